package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dockerclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "host:port of the node")
	timeout := fs.Duration("timeout", 3*time.Second, "for the dial and the whole exchange")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" {
		fmt.Fprintln(stderr, "dockerclient: -addr is required")
		return 2
	}
	if err := exchange(*addr, *timeout, fs.Args(), stdout); err != nil {
		fmt.Fprintf(stderr, "dockerclient: %v\n", err)
		return 1
	}
	return 0
}

// exchange sends lines and then "quit" to addr and copies the reply to out
// until the node closes the connection.
func exchange(addr string, timeout time.Duration, lines []string, out io.Writer) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	var req strings.Builder
	for _, l := range lines {
		req.WriteString(l + "\r\n")
	}
	req.WriteString("quit\r\n")
	if _, err := io.WriteString(c, req.String()); err != nil {
		return err
	}
	_, err = io.Copy(out, c)
	return err
}
