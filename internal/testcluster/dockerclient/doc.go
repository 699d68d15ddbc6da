// Command dockerclient is the text-protocol client the docker test harness
// (internal/testcluster) copies into its scratch image, next to sonaed, to
// talk to a node from inside the cluster's network: from a node's own
// container (docker exec) or from a throw-away container on the network
// (docker run). It shows what the nodes themselves can reach, which the
// host's view of the network does not.
//
//	dockerclient -addr 172.29.4.10:11211 [-timeout 3s] 'set k 0 0 1' v 'get k'
//
// Each argument is sent as one line ("\r\n" appended), then "quit"; every
// byte the node sends back until it closes the connection goes to stdout.
// The exit status is 1 if the node could not be reached or did not close
// the connection within the timeout (what was received is still printed),
// 2 on bad usage.
package main
