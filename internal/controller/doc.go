// Package controller owns the duties of the Raft leader: it creates the
// cluster's metadata on first start, admits the nodes that gossip finds
// (into Raft, as voters up to the configured number, and into the member
// list), keeps the voter count up when voters leave, removes members that
// left gracefully, and gives short vnodes replicas on the new nodes.
//
// Every decision is a meta.Command committed through Raft, so it is made
// once and every node sees the same outcome. The controller runs on every
// node and does nothing unless that node leads; a new leader reconciles
// from scratch, so a decision cut short by a leader change is redone.
package controller
