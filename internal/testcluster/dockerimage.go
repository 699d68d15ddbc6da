package testcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// dockerLabel marks every image, network and container the harness makes,
// so leftovers of a crashed run can be found:
//
//	docker ps -a --filter label=sonae-test
const dockerLabel = "sonae-test"

// dockerTimeout bounds one docker command; image builds get longer.
const dockerTimeout = time.Minute

// docker runs the docker CLI and returns its trimmed combined output.
func docker(args ...string) (string, error) {
	return dockerWithin(dockerTimeout, args...)
}

func dockerWithin(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return text, fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, text)
	}
	return text, nil
}

var (
	dockerOnce sync.Once
	dockerErr  error
)

// RequireDocker skips the test unless `docker info` succeeds (a client and
// a running engine).
func RequireDocker(t testing.TB) {
	t.Helper()
	dockerOnce.Do(func() { _, dockerErr = dockerWithin(30*time.Second, "info") })
	if dockerErr != nil {
		t.Skipf("docker not usable: %v", dockerErr)
	}
}

var (
	imageMu  sync.Mutex
	imageTag string // "" until built by this test binary
)

// DockerImage returns the tag of an image holding a static sonaed at
// /sonaed and the text-protocol client at /dockerclient, FROM scratch. Both are
// built with CGO_ENABLED=0 once per test binary; the tag is
// sonae-test:<hash of both binaries>, so an unchanged checkout reuses the
// image an earlier run built. Building a new image prunes the unused
// sonae-test images older than ten minutes, so edits do not pile images up;
// should another test binary prune ours meanwhile, the next call builds it
// again (from Go's build cache, in seconds).
func DockerImage(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	imageMu.Lock()
	defer imageMu.Unlock()
	if imageTag != "" {
		if _, err := docker("image", "inspect", "--format", "{{.Id}}", imageTag); err == nil {
			return imageTag
		}
	}
	tag, err := buildImage()
	if err != nil {
		t.Fatal(err)
	}
	imageTag = tag
	return tag
}

func buildImage() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "sonae-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	rootfs := filepath.Join(dir, "rootfs")
	// sonaed may want a temporary directory; scratch has none.
	if err := os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		return "", err
	}
	h := sha256.New()
	for _, b := range []struct{ pkg, name string }{
		{"./cmd/sonaed", "sonaed"},
		{"./internal/testcluster/dockerclient", "dockerclient"},
	} {
		out := filepath.Join(rootfs, b.name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building static %s: %v\n%s", b.name, err, msg)
		}
		if err := hashFile(h, out); err != nil {
			return "", err
		}
	}
	tag := "sonae-test:" + hex.EncodeToString(h.Sum(nil))[:16]
	if _, err := docker("image", "inspect", "--format", "{{.Id}}", tag); err == nil {
		return tag, nil // built by an earlier run
	}
	dockerfile := "FROM scratch\nCOPY rootfs/ /\nLABEL " + dockerLabel + "=1\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return "", err
	}
	if _, err := dockerWithin(5*time.Minute, "build", "-q", "-t", tag, dir); err != nil {
		return "", err
	}
	// Images in use by a container, stopped or not, are kept by prune.
	docker("image", "prune", "-a", "-f", "--filter", "label="+dockerLabel+"=1", "--filter", "until=10m") // best effort
	return tag, nil
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
