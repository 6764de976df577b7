package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSchema creates a schema of its own in the database base names and
// returns a DSN that uses it (search_path, application_name) through
// proxyAddr, and a func that drops it.
func pgSchema(ctx context.Context, base, proxyAddr string) (dsn, schema string, drop func() error, err error) {
	b := make([]byte, 6)
	rand.Read(b)
	schema = "faultrun_" + hex.EncodeToString(b)
	ident := pgx.Identifier{schema}.Sanitize()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		return "", "", nil, fmt.Errorf("connecting to %s: %w", redact(base), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(cctx, "CREATE SCHEMA "+ident); err != nil {
		return "", "", nil, fmt.Errorf("CREATE SCHEMA %s: %w", ident, err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return fmt.Errorf("DROP SCHEMA %s: %w", ident, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			return fmt.Errorf("DROP SCHEMA %s: %w", ident, err)
		}
		return nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		drop()
		return "", "", nil, errors.New("-postgres must be a postgres:// URL")
	}
	u.Host = proxyAddr
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema, drop, nil
}

// pgTarget is host:port of base.
func pgTarget(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", errors.New("-postgres must be a postgres:// URL with a host")
	}
	host := u.Hostname()
	if host != "127.0.0.1" && host != "localhost" && host != "::1" {
		return "", fmt.Errorf("-postgres must name a server on 127.0.0.1 (got %s): faultrun keeps all traffic on loopback", host)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return "127.0.0.1:" + port, nil
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(the DSN)"
}

// tmpfs is a small tmpfs mounted for the SQLite store.
type tmpfs struct{ dir string }

func mountTmpfs(size string) (*tmpfs, error) {
	dir, err := os.MkdirTemp("", "faultrun-tmpfs-")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("mount -t tmpfs -o size=%s tmpfs %s: %v: %s", size, dir, err, out)
	}
	return &tmpfs{dir: dir}, nil
}

// unmount retries while the mount is busy (a server still closing its
// files), then detaches it lazily, and removes the directory.
func (t *tmpfs) unmount() error {
	var err error
	for range 20 {
		var out []byte
		if out, err = exec.Command("umount", t.dir).CombinedOutput(); err == nil {
			return os.Remove(t.dir)
		}
		err = fmt.Errorf("umount %s: %v: %s", t.dir, err, out)
		time.Sleep(250 * time.Millisecond)
	}
	if out, lerr := exec.Command("umount", "-l", t.dir).CombinedOutput(); lerr != nil {
		return fmt.Errorf("%v; umount -l: %v: %s", err, lerr, out)
	}
	return os.Remove(t.dir)
}

// free is the space left on the file system holding dir, in bytes.
func free(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

// junk fills the file system of dir with a file until a write fails with
// ENOSPC (in shrinking blocks, down to 512 bytes), bounded by limit
// bytes. It returns how much it wrote; called again, it tops the file up.
type junk struct {
	path string
	f    *os.File
	n    int64
}

func (j *junk) fill(limit int64) (int64, error) {
	if j.f == nil {
		f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return 0, err
		}
		j.f = f
	}
	start := j.n
	for _, bs := range []int{64 << 10, 4 << 10, 512} {
		block := make([]byte, bs)
		for j.n+int64(bs) <= limit {
			n, err := j.f.Write(block)
			j.n += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return j.n - start, err
			}
		}
	}
	return j.n - start, nil
}

func (j *junk) remove() error {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	err := os.Remove(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func sqliteURL(dir string) string {
	return "sqlite://" + filepath.ToSlash(filepath.Join(dir, "gatehouse.db"))
}
