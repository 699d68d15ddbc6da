package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sonae-kv/sonae/internal/membership"
	"github.com/sonae-kv/sonae/internal/protocol"
)

// The gossip messaging commands, serf's `event` and `query`. They carry
// operator messages to every member's --event-handler scripts; sonae itself
// sends nothing this way.
//
// A payload is the rest of the line, its words joined by single spaces;
// with -base64 it is one base64 word instead, so that any bytes (several
// blanks, newlines) travel exactly. `sonae event` and `sonae query` always
// send -base64.

const (
	usageEvent = "event [-coalesce] [-base64] NAME [PAYLOAD...]"
	usageQuery = "query [-node NODE]... [-tag KEY=REGEXP]... [-timeout DURATION] [-base64] NAME [PAYLOAD...]"
	// maxQueryTimeout bounds how long a query may hold the connection.
	maxQueryTimeout = 5 * time.Minute
)

// messageArgs are the parsed arguments of event or query.
type messageArgs struct {
	name     string
	payload  []byte
	coalesce bool
	opts     membership.QueryOptions
}

// parseMessageArgs reads the leading -options (those in allowed), then NAME
// and the payload. The error is the text after CLIENT_ERROR.
func parseMessageArgs(args [][]byte, allowed string) (messageArgs, error) {
	var m messageArgs
	b64 := false
	i := 0
	value := func(opt string) (string, error) {
		if i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", opt)
		}
		i++
		return string(args[i]), nil
	}
	for ; i < len(args) && strings.HasPrefix(string(args[i]), "-"); i++ {
		opt := string(args[i])
		if !strings.Contains(allowed, " "+opt+" ") {
			return m, fmt.Errorf("unknown option %q", opt)
		}
		switch opt {
		case "-coalesce":
			m.coalesce = true
		case "-base64":
			b64 = true
		case "-node":
			v, err := value(opt)
			if err != nil {
				return m, err
			}
			m.opts.Nodes = append(m.opts.Nodes, v)
		case "-tag":
			v, err := value(opt)
			if err != nil {
				return m, err
			}
			k, re, ok := strings.Cut(v, "=")
			if !ok || k == "" {
				return m, fmt.Errorf("-tag %q is not KEY=REGEXP", v)
			}
			if _, err := regexp.Compile(re); err != nil {
				return m, fmt.Errorf("-tag %s: %q is not a regular expression: %v", k, re, err)
			}
			if m.opts.Tags == nil {
				m.opts.Tags = map[string]string{}
			}
			m.opts.Tags[k] = re
		case "-timeout":
			v, err := value(opt)
			if err != nil {
				return m, err
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > maxQueryTimeout {
				return m, fmt.Errorf("-timeout %q is not a duration in (0, %s]", v, maxQueryTimeout)
			}
			m.opts.Timeout = d
		}
	}
	if i >= len(args) {
		return m, errors.New("NAME is missing")
	}
	m.name = string(args[i])
	rest := args[i+1:]
	switch {
	case b64 && len(rest) > 1:
		return m, errors.New("with -base64 the payload is one base64 word")
	case b64 && len(rest) == 1:
		p, err := base64.StdEncoding.DecodeString(string(rest[0]))
		if err != nil {
			return m, fmt.Errorf("the payload is not base64: %v", err)
		}
		m.payload = p
	default:
		words := make([]string, len(rest))
		for j, w := range rest {
			words[j] = string(w)
		}
		m.payload = []byte(strings.Join(words, " "))
	}
	return m, nil
}

// messageError answers an error of membership.UserEvent or Query.
func (c *conn) messageError(cmd string, err error) {
	switch {
	case errors.Is(err, membership.ErrTooLarge), errors.Is(err, membership.ErrReservedName),
		errors.Is(err, membership.ErrBadFilter):
		c.line("CLIENT_ERROR " + cmd + ": " + err.Error())
	default:
		c.line("SERVER_ERROR " + cmd + ": " + err.Error())
	}
}

// cmdEvent is `event`: a user event to every member's handlers.
func (c *conn) cmdEvent(args [][]byte) {
	if !c.authorized(&protocol.Request{}, "event") {
		return
	}
	if c.srv.cl == nil {
		c.line("SERVER_ERROR this node runs without a cluster")
		return
	}
	m, err := parseMessageArgs(args, " -coalesce -base64 ")
	if err != nil {
		c.line("CLIENT_ERROR " + err.Error() + "; usage: " + usageEvent)
		return
	}
	if err := c.srv.cl.gossip.UserEvent(m.name, m.payload, m.coalesce); err != nil {
		c.messageError("event", err)
		return
	}
	c.line("OK")
}

// cmdQuery is `query`: it asks the members (all, or those matching -node
// and -tag) and answers one line per response, in arrival order:
//
//	RESPONSE <from> <payload as a Go quoted string>
//	END
func (c *conn) cmdQuery(args [][]byte) {
	if !c.authorized(&protocol.Request{}, "query") {
		return
	}
	if c.srv.cl == nil {
		c.line("SERVER_ERROR this node runs without a cluster")
		return
	}
	m, err := parseMessageArgs(args, " -node -tag -timeout -base64 ")
	if err != nil {
		c.line("CLIENT_ERROR " + err.Error() + "; usage: " + usageQuery)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxQueryTimeout+time.Second)
	defer cancel()
	resps, err := c.srv.cl.gossip.Query(ctx, m.name, m.payload, m.opts)
	if err != nil {
		c.messageError("query", err)
		return
	}
	for _, r := range resps {
		c.line("RESPONSE " + r.From + " " + strconv.Quote(string(r.Payload)))
	}
	c.line(protocol.ReplyEnd)
}
