//go:build linux

package natlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/p2pcompat/p2pcompat/internal/testsupport"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// syncBuf is an output sink that a waiter can poll while the process runs.
type syncBuf = testsupport.SyncBuffer

// proc is a long-running program inside one namespace. It is stopped by
// the test's cleanup whatever happens, and dies with the test binary
// (Pdeathsig) if that is killed.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout syncBuf
	stderr syncBuf
	done   chan struct{}
	err    error // valid once done is closed
}

// start runs argv in namespace ns. Its cleanup is registered on t, so a
// process started by a subtest ends with that subtest.
func (l *lab) start(t testing.TB, ns, name string, argv ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	args := append([]string{"netns", "exec", l.ns(ns)}, argv...)
	p.cmd = exec.Command("ip", args...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("natlab: start %s in %s: %v", name, ns, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(3 * time.Second)
		if t.Failed() && strings.TrimSpace(p.stderr.String()) != "" {
			t.Logf("%s stderr (tail):\n%s", name, tail(p.stderr.String(), 40))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after grace; it returns once the
// process is gone.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.cmd.Process.Kill()
	<-p.done
}

// wait waits for the process to end by itself.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %v", p.name, timeout)
	}
}

// waitOutput waits until stdout or stderr contains s.
func (p *proc) waitOutput(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.stdout.String(), s) || strings.Contains(p.stderr.String(), s) {
			return nil
		}
		if p.exited() {
			// one last look: the output may have landed with the exit
			if strings.Contains(p.stdout.String(), s) || strings.Contains(p.stderr.String(), s) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q; stderr:\n%s", p.name, p.err, s, tail(p.stderr.String(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not print %q within %v; stderr:\n%s", p.name, s, timeout, tail(p.stderr.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsonLine decodes the last JSON object line of the process's stdout.
func (p *proc) jsonLine(v any) error {
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			return json.Unmarshal([]byte(lines[i]), v)
		}
	}
	return fmt.Errorf("%s printed no JSON line; stdout %q; stderr:\n%s", p.name, p.stdout.String(), tail(p.stderr.String(), 20))
}

// run runs a short command to completion (inside ns, or on the host side
// when ns is "") and returns its combined output.
func (l *lab) run(ns string, timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", l.ns(ns)}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("timed out after %v", timeout))
	}
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// must runs a setup command and fails the test if it fails.
func (l *lab) must(t testing.TB, ns string, argv ...string) string {
	t.Helper()
	out, err := l.run(ns, 20*time.Second, argv...)
	if err != nil {
		t.Fatalf("natlab: %v", err)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
