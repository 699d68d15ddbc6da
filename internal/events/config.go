package events

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Runner. Start from Default.
type Config struct {
	// Handlers run for the events they match, in this order.
	Handlers []Handler
	// Timeout bounds one handler run; at the timeout the handler's whole
	// process group is killed. Default 30s. serf has no timeout.
	Timeout time.Duration
	// QueueSize is how many events may wait for the worker; when it is
	// full, the oldest waiting event is dropped. Default 1024.
	QueueSize int
	// Shell runs each handler as `Shell -c CMD`, like serf. Default
	// "/bin/sh".
	Shell string
	// MaxOutput is how many bytes of a run's stdout+stderr are kept: the
	// query response and the logged output. Default 1024, serf's
	// QueryResponseSizeLimit; note serf (and membership.Event.Respond)
	// applies that limit to the encoded response, which is a few dozen
	// bytes longer than the output.
	MaxOutput int
	// Logger receives the package's logs; nil discards them.
	Logger *slog.Logger
}

// Default returns the default Config, with no handlers.
func Default() Config {
	return Config{
		Timeout:   30 * time.Second,
		QueueSize: 1024,
		Shell:     "/bin/sh",
		MaxOutput: 1024,
	}
}

// configError is one Validate problem; it names the field.
type configError struct {
	field string
	msg   string
}

func (e *configError) Error() string { return "events: Config." + e.field + " " + e.msg }
func (e *configError) Unwrap() error { return ErrBadConfig }

// Validate reports every problem with c, each error naming the field;
// they all wrap ErrBadConfig.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &configError{field: field, msg: fmt.Sprintf(format, args...)})
	}
	if c.Timeout <= 0 {
		bad("Timeout", "is %s: must be positive", c.Timeout)
	}
	if c.QueueSize <= 0 {
		bad("QueueSize", "is %d: must be positive", c.QueueSize)
	}
	if c.Shell == "" {
		bad("Shell", "is empty: want a shell taking -c, such as /bin/sh")
	}
	if c.MaxOutput <= 0 {
		bad("MaxOutput", "is %d: must be positive", c.MaxOutput)
	}
	for i, h := range c.Handlers {
		if h.command == "" {
			bad(fmt.Sprintf("Handlers[%d]", i), "is empty: build handlers with ParseHandler")
		}
	}
	return errors.Join(errs...)
}
