// Package testcluster runs sonae nodes for tests, three ways:
//
//   - StartInProcess: one node inside the test process (server.Start on a
//     real socket).
//   - Start and Cluster: real sonaed processes, built once per test binary.
//     A Cluster puts node i on its own loopback address, 127.0.0.(10+i)
//     (127.0.0.1 and distinct ports where 127/8 is not all usable), with a
//     port and a data directory of its own; node 0 bootstraps and the others
//     join it. Faults: kill -9, SIGSTOP/SIGCONT, graceful stop, restart on
//     the same address and data.
//   - DockerCluster: static sonaed binaries in FROM-scratch containers on a
//     private docker network, for what processes on one loopback cannot do:
//     cut one node off the network (Partition/Heal) while it runs.
//
// Waits poll (testutil.Eventually); nothing sleeps for a guessed time. Every
// process and container is killed when the test ends, paused ones too, and
// the output of every node (all its launches) is logged only if the test
// failed. Command and Stat speak the text protocol to any node; WaitMembers
// polls `stat routing.nodes.length`.
//
// Cluster-level helpers skip the test (RequireClusterFlags) while sonaed
// lacks the cluster flags (--join and friends), and docker mode skips it
// when `docker info` fails. Only tests import this package.
package testcluster
