//go:build linux

package protocoltest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child if the test binary dies
// without running its cleanups (e.g. killed on timeout).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
