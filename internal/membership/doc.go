// Package membership is sonae's gossip layer: hashicorp/serf v0.11 on
// memberlist v0.7, embedded, behind sonae-owned types. Callers see Config,
// Membership, Member, Event and QueryResponse; no serf or memberlist type
// crosses the API, and errors wrap this package's sentinels.
//
// A node Starts its Membership (alone, or re-joining the members its
// snapshot names), Joins one member's address, reads Events() and uses
// SetTags, UserEvent and Query; it exits with Leave then Shutdown (or only
// Shutdown, which the others report as a failure, as after a crash).
//
// # Failure detection profiles
//
// memberlist (SWIM + Lifeguard) probes one member per ProbeInterval; with no
// ack within ProbeTimeout it asks others to probe indirectly, then marks the
// member suspect. The suspicion times out after
// SuspicionMult*max(1,log10(N))*ProbeInterval when SuspicionMult-2 peers
// confirm it, or up to SuspicionMaxTimeoutMult times that when they do
// not; the suspect may refute meanwhile. Then serf reports MemberFailed.
// Config.DetectionEstimate gives the arithmetic.
//
//	knob                     lan (default)  local (tests)  wan (memberlist's)
//	ProbeInterval            400ms          200ms          5s
//	ProbeTimeout             200ms          100ms          3s
//	SuspicionMult            3              3              6
//	SuspicionMaxTimeoutMult  3              3              6
//	GossipInterval           100ms          50ms           500ms
//	PushPullInterval         15s            5s             60s
//	TCPTimeout               5s             1s             30s
//	ReconnectInterval        10s            1s             30s
//	DeadNodeReclaimTime      10s            1s             60s
//	LeavePropagateDelay      500ms          100ms          3s
//	RejoinInterval           30s            1s             60s
//	ReconnectTimeout         72h            72h            72h
//	TombstoneTimeout         24h            24h            24h
//	detection, N<=10         ~1.9s (<=5s)   ~0.95s (<=2.5s) ~38s
//
// The lan profile meets the "killed node reported failed in about 2 s"
// target: measured on loopback with 3 members, 1.9-2.3 s (local: 0.95-1.2
// s). It is tighter than memberlist's LAN preset (1 s probes, ~5 s), so a
// member stalled for more than about 1.2 s (GC, swap, SIGSTOP) is reported
// failed and then rejoins when it resumes (it refutes, and the others
// report MemberJoin). The rest of sonae must treat MemberFailed as a
// suspicion to act on carefully (dependencies.md §2 pitfall 2): promote
// secondaries, move data only after a grace period or MemberReap. Other
// memberlist fields come from its preset (DefaultLANConfig,
// DefaultLocalConfig, DefaultWANConfig): IndirectChecks, GossipNodes,
// AwarenessMaxMultiplier 8 (a degraded member slows its own probing, up to
// 8x); RetransmitMult is 4 in every profile (the local preset's 2 lost
// leave intents in tests: a leave reported as a failure).
//
// # Events
//
// serf blocks its own state updates while its event channel is full (with a
// snapshot, its snapshotter drops the event instead, silently). Membership
// gives serf a 4096-event channel and one goroutine (the pump) that is
// always ready to receive from it. The pump queues events for Events() in a
// FIFO bounded by Config.EventQueueSize (default 16384): when the consumer
// falls that far behind, the oldest queued event is dropped, counted
// (DroppedEvents) and logged (the first drop, then every 1024th). Bounded
// rather than unbounded, because a stuck consumer must not grow memory
// without limit; drop-oldest, because the newest events describe the
// current state. A consumer that sees DroppedEvents grow must reconcile
// from Members(). Events() is closed after Shutdown, or when serf shuts
// itself down (it does so on losing a node-name conflict).
//
// Events come in serf's order, uncoalesced. Every member also reports its
// own join, its own user events and queries. A query is answered with
// Event.Respond before Event.Deadline; Query collects answers until its
// timeout. User events and queries travel by UDP gossip: best effort,
// deduplicated, in no guaranteed order.
//
// # Clusters, keys and addresses
//
// ClusterName becomes memberlist's label "sonae/<name>": packets and
// streams of another label are dropped, so two clusters (say, a primary and
// its hot standby) never merge, even with one key. SecretKey (16/24/32
// bytes) encrypts and authenticates gossip with AES-GCM; without it gossip
// is plaintext and forgeable. A join to another cluster or with another key
// fails with ErrJoinFailed ("EOF" for a label mismatch, "no installed keys
// could decrypt the message" for a key mismatch).
//
// TCP and UDP share one port (BindPort; 0 picks one, reported by Addr).
// Behind NAT or in containers set AdvertiseAddr/AdvertisePort. Node names
// must be stable and unique: sonae uses the node id, never the hostname.
//
// # Restarts and splits
//
// With SnapshotPath, serf records the members it knows and its Lamport
// clocks; a restarted member re-joins them by itself (no Join call), does
// not replay old user events, and refutes the others' view that it is dead.
// On the same address this takes a few milliseconds. On a new address the
// others refuse the name ("conflicting address") until it has been failed
// for DeadNodeReclaimTime; the member's next push/pull then gets it
// accepted, so it is back within DeadNodeReclaimTime + PushPullInterval.
//
// serf reconnects to failed members every ReconnectInterval until
// ReconnectTimeout, then reaps them; a split that outlasts that stays split,
// and after mass restarts peers can keep each other dead (memberlist#311).
// So Membership remembers every seed given to Join and, every
// RejoinInterval, joins again those that are not alive members (even when
// the first Join failed). The loop stops at Leave and Shutdown.
//
// # Size limits
//
// All tags of a member, encoded (TagsSize), must fit memberlist's 512-byte
// node metadata (MaxTagsSize): Validate and SetTags refuse more with
// ErrTagsTooLarge. A user event's name and payload get 512 bytes
// (MaxUserEventSize), a query and a response 1 KiB each. Gossip versions
// and addresses, never the routing table.
//
// # serf and memberlist quirks handled here
//
//   - serf.Create starts goroutines (query handler, snapshotter) before it
//     creates memberlist, and leaks them when memberlist then fails (a taken
//     port, no advertisable address). Start opens the snapshot file, binds
//     the port (its own memberlist.NetTransport, retried like memberlist for
//     port 0) and checks the advertise address before calling serf.Create.
//   - serf and memberlist log through *log.Logger with "[WARN] " prefixes;
//     Membership forwards each line to the slog.Logger at that level.
//   - Join's error is a multi-line go-multierror; it is flattened to one line.
//   - serf.SetTags stores the caller's map without a lock; Membership copies
//     it and serializes SetTags.
//   - A member that has left (Leave) keeps its listeners until Shutdown and
//     can be re-admitted by peers' reconnects; call Shutdown right after.
//   - memberlist.Shutdown does not wait for an in-flight probe: that
//     goroutine ends by itself within 8x ProbeInterval.
//
// # Versions
//
// Every member must run the same serf and memberlist versions (protocol
// versions, MsgpackUseNewTimeFormat left false); sonae pins serf v0.11.0 and
// memberlist v0.7.0.
package membership
