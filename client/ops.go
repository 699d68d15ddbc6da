package client

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Gets fetches one key with its CAS unique (the gets command); Get does the
// same (it has always sent gets).
func (c *Conn) Gets(key string) (Item, error) { return c.getOne("gets", key) }

// getOne sends cmd for one key; ErrNotFound on a miss.
func (c *Conn) getOne(cmd, key string) (Item, error) {
	items, err := c.retrieve(cmd, []string{key})
	if err != nil {
		return Item{}, err
	}
	if len(items) == 0 {
		return Item{}, ErrNotFound
	}
	return items[0], nil
}

// Replace stores value only if key exists (ErrNotStored otherwise).
func (c *Conn) Replace(key string, value []byte, flags uint32, exptime int64) error {
	return c.store("replace", key, value, flags, exptime, 0)
}

// Append adds value after the existing value (ErrNotStored if key is
// absent). flags and exptime are ignored by the server but sent.
func (c *Conn) Append(key string, value []byte) error {
	return c.store("append", key, value, 0, 0, 0)
}

// Prepend adds value before the existing value (ErrNotStored if key is
// absent).
func (c *Conn) Prepend(key string, value []byte) error {
	return c.store("prepend", key, value, 0, 0, 0)
}

// Incr adds delta to the decimal value of key and returns the new value
// (ErrNotFound if key is absent; a non-numeric value is a *ServerError).
func (c *Conn) Incr(key string, delta uint64) (uint64, error) { return c.arith("incr", key, delta) }

// Decr subtracts delta from the decimal value of key, stopping at 0, and
// returns the new value.
func (c *Conn) Decr(key string, delta uint64) (uint64, error) { return c.arith("decr", key, delta) }

func (c *Conn) arith(cmd, key string, delta uint64) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	line, err := c.Command(cmd + " " + key + " " + strconv.FormatUint(delta, 10))
	if err != nil {
		return 0, err
	}
	if line == "NOT_FOUND" {
		return 0, ErrNotFound
	}
	v, err := strconv.ParseUint(line, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s answered %q", ErrProtocol, cmd, line)
	}
	return v, nil
}

// Touch sets a new exptime on key (ErrNotFound if key is absent).
func (c *Conn) Touch(key string, exptime int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	line, err := c.Command("touch " + key + " " + strconv.FormatInt(exptime, 10))
	if err != nil {
		return err
	}
	switch line {
	case "TOUCHED":
		return nil
	case "NOT_FOUND":
		return ErrNotFound
	}
	return fmt.Errorf("%w: touch answered %q", ErrProtocol, line)
}

// ConnOption sends "conn_option NAME on|off" (direct, read_secondary; see
// docs/cluster.md) and wants OK.
func (c *Conn) ConnOption(name string, on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	line, err := c.Command("conn_option " + name + " " + v)
	if err != nil {
		return err
	}
	if line != "OK" {
		return fmt.Errorf("%w: conn_option %s %s answered %q", ErrProtocol, name, v, line)
	}
	return nil
}

// stale reports whether an idle connection can no longer be used: the peer
// closed it, or it holds bytes nobody asked for. It costs one non-blocking
// peek at the socket (where the platform allows it, see conncheck_unix.go);
// a Cluster checks before sending a write it must not repeat.
func (c *Conn) stale() bool {
	return c.r.Buffered() > 0 || connDead(c.nc)
}

// reusable reports whether the connection's framing is intact after a
// request returned err: answers and error lines leave it usable; I/O and
// protocol errors do not.
func reusable(err error) bool {
	var se *ServerError
	switch {
	case err == nil, errors.As(err, &se):
		return true
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNotStored),
		errors.Is(err, ErrCASConflict), errors.Is(err, ErrBadKey):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, ErrProtocol):
		return false
	}
	return false
}
