//go:build !linux

package protocoltest

import "os/exec"

func dieWithParent(cmd *exec.Cmd) {}
