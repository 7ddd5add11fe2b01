package perf_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCluster is a PostgreSQL cluster of the test's own, in a temp dir on a
// free loopback port, so it can be restarted without disturbing the
// shared server other packages test against.
type pgCluster struct {
	bin, dir, data string
	port           int
	// runAs is "postgres" when the test runs as root (PostgreSQL refuses
	// to run as root), else "" (run as the current user).
	runAs string
}

// DSN is the superuser DSN of the cluster's postgres database.
func (c *pgCluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", c.port)
}

// startCluster initdb's and starts a private cluster, or skips t with the
// reason when this machine cannot run one (no PostgreSQL binaries, no
// unprivileged user to run them as). Under CI=true a machine that has the
// binaries must be able to run it: failures there fail the test.
func startCluster(t *testing.T) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Skip("skipping: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian package postgresql) to start a private cluster")
	}
	sort.Slice(bins, func(i, j int) bool { return pgVersion(bins[i]) > pgVersion(bins[j]) })
	c := &pgCluster{bin: filepath.Dir(bins[0])}
	fail := t.Fatalf
	if os.Getenv("CI") != "true" {
		fail = t.Skipf
	}
	dir, err := os.MkdirTemp("", "stepup-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir, c.data = dir, filepath.Join(dir, "data")
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			fail("skipping: running as root and there is no postgres user to run a private cluster as: %v", err)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			fail("skipping: running as root without runuser to drop to the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.runAs = "postgres"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		fail("initdb of a private cluster failed: %v\n%s", err, out)
	}
	if err := c.ctl("start"); err != nil {
		fail("starting a private cluster failed: %v", err)
	}
	t.Cleanup(func() {
		if out, err := c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("stopping the private cluster: %v\n%s", err, out)
		}
	})
	return c
}

func pgVersion(pgCtl string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(pgCtl))))
	return v
}

// run runs one of the cluster's binaries, as runAs when set.
func (c *pgCluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// ctl runs pg_ctl start or restart (immediate mode: the server is killed
// without a checkpoint and recovers from its WAL, as after a crash) and
// waits until the cluster accepts connections.
func (c *pgCluster) ctl(action string) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=50", c.port, c.dir)
	args := []string{"-D", c.data, "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "-o", opts}
	if action == "restart" {
		args = append(args, "-m", "immediate")
	}
	if out, err := c.run("pg_ctl", append(args, action)...); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl %s: %v\n%s\n%s", action, err, out, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSN())
		if err == nil {
			return conn.Close(ctx)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("private cluster not accepting connections after %s: %w", action, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
