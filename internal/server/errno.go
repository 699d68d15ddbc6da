package server

import "syscall"

// syscallEMFILE is "too many open files", a transient accept error.
var syscallEMFILE = syscall.EMFILE
