package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/events"
	"github.com/sonae-kv/sonae/internal/membership"
)

// gossipHooks are what a node does with gossip events for the outside
// world: the --event-handler scripts (serf's contract) and the
// --live-nodes-file. Both are fed from pumpEvents and neither may block it:
// the runner queues, and the live-node file is written by its own
// goroutine, which coalesces a burst of changes into one write.
type gossipHooks struct {
	runner   *events.Runner // nil without handlers
	livePath string         // "" without a live-node file
	liveWake chan struct{}
}

// newGossipHooks starts the handler runner. self describes this member at
// the time of each event (tags can change).
func newGossipHooks(cfg *config.Config, self func() events.Self, log *slog.Logger) (*gossipHooks, error) {
	h := &gossipHooks{livePath: cfg.LiveNodesFile, liveWake: make(chan struct{}, 1)}
	if len(cfg.EventHandlers) == 0 {
		return h, nil
	}
	ec := events.Default()
	ec.Timeout = time.Duration(cfg.EventHandlerTimeout)
	ec.Logger = log
	for _, spec := range cfg.EventHandlers {
		hd, err := events.ParseHandler(spec)
		if err != nil {
			return nil, err
		}
		ec.Handlers = append(ec.Handlers, hd)
	}
	r, err := events.NewRunner(ec, self)
	if err != nil {
		return nil, err
	}
	h.runner = r
	return h, nil
}

// deliver hands one gossip event to the handlers and, for a member event,
// schedules a rewrite of the live-node file.
func (h *gossipHooks) deliver(ev membership.Event) {
	if h.runner != nil {
		var respond func([]byte) error
		if ev.Kind == membership.QueryEvent {
			respond = ev.Respond
		}
		h.runner.Dispatch(handlerEvent(ev), respond)
	}
	if ev.Kind.IsMember() {
		h.membersChanged()
	}
}

func (h *gossipHooks) membersChanged() {
	select {
	case h.liveWake <- struct{}{}:
	default:
	}
}

// keepLiveNodes rewrites the live-node file now and after every change of
// membership until ctx ends.
func (h *gossipHooks) keepLiveNodes(ctx context.Context, cluster string, members func() []membership.Member, now func() time.Time, log *slog.Logger) {
	if h.livePath == "" {
		return
	}
	failing := false
	for {
		ms := members()
		list := make([]events.Member, len(ms))
		for i, m := range ms {
			list[i] = handlerMember(m)
		}
		err := events.WriteLiveNodes(h.livePath, events.NewLiveNodes(cluster, list, now()))
		switch {
		case err != nil && !failing:
			log.Error("cannot write the live-node file; retrying on the next membership change", "path", h.livePath, "error", err)
		case err == nil && failing:
			log.Info("live-node file written again", "path", h.livePath)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-h.liveWake:
		}
	}
}

// close stops the runner, killing a handler that still runs.
func (h *gossipHooks) close() {
	if h != nil && h.runner != nil {
		h.runner.Close()
	}
}

func handlerEvent(ev membership.Event) events.Event {
	out := events.Event{Kind: ev.Kind.String(), Name: ev.Name, Payload: ev.Payload, LTime: ev.LTime}
	for _, m := range ev.Members {
		out.Members = append(out.Members, handlerMember(m))
	}
	return out
}

// handlerMember is m as serf shows members to handlers: the address
// without the port.
func handlerMember(m membership.Member) events.Member {
	return events.Member{Name: m.Name, Addr: m.Addr.String(), Tags: m.Tags, Status: m.Status.String()}
}
