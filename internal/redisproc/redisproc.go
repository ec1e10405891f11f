// Package redisproc runs a throwaway redis-server: loopback only, no
// persistence. The test helper (internal/redistest) and the bench's Redis
// scenarios both use it.
package redisproc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// StartTimeout bounds how long a server may take to answer PING.
const StartTimeout = 10 * time.Second

// Proc is one redis-server process.
type Proc struct {
	cmd  *exec.Cmd
	port int
	done chan struct{} // closed when the process has exited
}

// Binary returns the path of redis-server, or an error saying how to install it.
func Binary() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found (%v): install it (apt-get install -y redis-server)", err)
	}
	return bin, nil
}

// Start runs bin on 127.0.0.1:port with dir as its working directory and no
// persistence, sends its output to log, and waits until it answers PING. port 0
// picks a free port. The kernel kills the server if its parent dies (Linux).
func Start(bin, dir string, port int, log io.Writer) (*Proc, error) {
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Stdout, cmd.Stderr = log, log
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Proc{cmd: cmd, port: port, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(StartTimeout)
	for {
		err := Ping(p.Addr())
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("redis-server on port %d exited before answering PING", port)
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within %v: %v", port, StartTimeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Addr is the server's host:port.
func (p *Proc) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// Port is the server's port.
func (p *Proc) Port() int { return p.port }

// PID is the server's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stop kills the server and waits for it to exit. Stopping twice does nothing.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Ping sends one RESP PING and expects +PONG.
func Ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
