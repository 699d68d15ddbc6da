// Package netmux splits the connections of a node's single TCP port (the
// client port) by their first byte, so that memcached clients, Raft,
// memberlist streams and sonae's peer RPC share one port number
// (docs/cluster.md, "One port number per node"):
//
//	first byte   kind        delivered to
//	0xF1         KindRaft    Listener(KindRaft), marker consumed
//	0xF2         KindGossip  Listener(KindGossip), marker consumed
//	0xF3         KindPeer    Listener(KindPeer), marker consumed
//	anything     KindClient  Listener(KindClient), byte given back by the
//	else                     connection's first Read
//
// A Mux owns the port's net.Listener. Serve accepts connections and reads
// each one's first byte in a goroutine of its own, with a deadline
// (Options.FirstByteTimeout, default 1 s), so a slow one never stalls the
// accept loop or the others. Peers write their marker as soon as they
// connect, so a connection that sends nothing in time is a memcached client
// that opened its connection ahead of time, as client pools do: it goes to
// the client listener and is served when it speaks.
//
// Each kind has a sub-listener with a bounded queue (Options.QueueLength):
// a connection that finds no room within FirstByteTimeout is closed, so a
// kind nobody Accepts cannot hold up the others. A sub-listener may be
// closed on its own (the component that owned it shut down); Listener then
// returns a fresh one for that kind, so the component can be restarted on
// the same Mux. Close closes the port, every sub-listener and every
// connection not yet delivered, and waits for the Mux's goroutines.
//
// The other side uses Dial, which connects and writes the marker byte. The
// memcached binary protocol (first byte 0x80) is not supported: such a
// connection goes to the client listener like any other byte.
//
// netmux imports only the standard library.
package netmux
