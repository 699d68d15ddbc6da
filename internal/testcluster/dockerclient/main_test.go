package main

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"
)

// TestExchange runs the client against a fake node that answers each line
// with its upper-case form and closes on "quit".
func TestExchange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil || line == "quit\r\n" {
				return
			}
			c.Write([]byte(strings.ToUpper(line)))
		}
	}()
	var out, errs bytes.Buffer
	if code := run([]string{"-addr", ln.Addr().String(), "version", "get k"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if got, want := out.String(), "VERSION\r\nGET K\r\n"; got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out, errs bytes.Buffer
	if code := run([]string{"-addr", addr, "version"}, &out, &errs); code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, errs.String())
	}
	if code := run(nil, &out, &errs); code != 2 {
		t.Fatalf("no -addr: exit %d, want 2", code)
	}
}
