package policies

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Source gives the policy in force. Policy must be cheap and safe for
// concurrent use: the middleware calls it on every request.
type Source interface {
	Policy() *Policy
}

// StaticSource returns a Source that always gives p.
func StaticSource(p *Policy) Source { return staticSource{p} }

type staticSource struct{ p *Policy }

func (s staticSource) Policy() *Policy { return s.p }

// ReloadStats describe the reloads of a FileSource, for metrics and
// readiness checks.
type ReloadStats struct {
	// Loads counts successful loads, the first one included.
	Loads int64
	// Failures counts rejected reloads (the previous policy stayed).
	Failures int64
	// LastError is the error of the last attempt, nil if it succeeded.
	LastError error
	// LastSuccess is when a policy was last loaded.
	LastSuccess time.Time
	// LastAttempt is when a load was last tried.
	LastAttempt time.Time
}

// FileSourceOptions tune a FileSource. Zero values mean the documented
// defaults.
type FileSourceOptions struct {
	// Logger receives reload results. Defaults to slog.Default().
	Logger *slog.Logger
	// Metrics records reloads; nil records nothing.
	Metrics *Metrics
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// FileSource is a policy file that can be reloaded while requests are
// served. A reload that fails (unreadable or invalid file) keeps the
// policy in force and is logged and counted. Safe for concurrent use.
type FileSource struct {
	path    string
	logger  *slog.Logger
	metrics *Metrics
	now     func() time.Time

	cur atomic.Pointer[Policy]

	mu    sync.Mutex // serialises loads; guards the fields below
	stats ReloadStats
	hash  [sha256.Size]byte
}

// NewFileSource loads the policy file at path. It fails if the file cannot
// be read or is invalid: a service must not start without a policy.
func NewFileSource(path string, opts FileSourceOptions) (*FileSource, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &FileSource{path: path, logger: opts.Logger, metrics: opts.Metrics, now: opts.Now}
	if _, err := s.load(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Policy returns the policy in force.
func (s *FileSource) Policy() *Policy { return s.cur.Load() }

// Path is the file the source reads.
func (s *FileSource) Path() string { return s.path }

// Stats returns the reload statistics.
func (s *FileSource) Stats() ReloadStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Reload reads the file again and, if it is valid, puts it in force, even
// if its content did not change (what SIGHUP does). On error the previous
// policy stays and the error says why.
func (s *FileSource) Reload() error {
	_, err := s.load(true)
	return err
}

// reloadIfChanged is what a file event does: nothing if the content is
// the same as the policy in force.
func (s *FileSource) reloadIfChanged() (bool, error) { return s.load(false) }

func (s *FileSource) load(force bool) (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	data, err := readPolicyFile(s.path)
	var p *Policy
	if err == nil {
		sum := sha256.Sum256(data)
		if !force && s.cur.Load() != nil && bytes.Equal(sum[:], s.hash[:]) {
			return false, nil
		}
		p, err = Parse(data)
		if err != nil {
			err = fmt.Errorf("%s: %w", s.path, err)
		} else {
			s.hash = sum
		}
	}
	s.stats.LastAttempt = now
	s.stats.LastError = err
	s.metrics.reload(err, now)
	if err != nil {
		s.stats.Failures++
		if s.cur.Load() != nil {
			s.logger.Error("policy reload rejected; previous policy stays in force", "path", s.path, "error", err)
		}
		return false, err
	}
	s.cur.Store(p)
	s.stats.Loads++
	s.stats.LastSuccess = now
	s.logger.Info("policy loaded", "path", s.path, "rules", len(p.rules), "loads", s.stats.Loads)
	return true, nil
}

// WatchOptions say what makes a FileSource reload.
type WatchOptions struct {
	// Signals: every value received forces a reload. The caller subscribes
	// the channel (signal.Notify(ch, syscall.SIGHUP)); the library installs
	// no signal handler of its own. Nil means none.
	Signals <-chan os.Signal
	// Files reloads when the file changes. The directory is watched, not
	// the file, so editors that replace the file and Kubernetes ConfigMap
	// updates (an atomic swap of the ..data symlink) are seen.
	Files bool
	// Debounce groups bursts of file events into one reload. Defaults to
	// 100ms.
	Debounce time.Duration
}

// Watch reloads on signals and file changes until ctx is done; it returns
// nil then, or an error if the file watcher cannot be set up. Reload errors
// do not stop it: they are logged, counted and kept in Stats.
func (s *FileSource) Watch(ctx context.Context, opts WatchOptions) error {
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if opts.Files {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("policies: watching %s: %w", s.path, err)
		}
		defer w.Close()
		dir := filepath.Dir(s.path)
		if err := w.Add(dir); err != nil {
			return fmt.Errorf("policies: watching %s: %w", dir, err)
		}
		events, errs = w.Events, w.Errors
	}
	base := filepath.Base(s.path)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-opts.Signals:
			if !ok {
				opts.Signals = nil
				continue
			}
			_ = s.Reload()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			name := filepath.Base(ev.Name)
			// ..data is the symlink Kubernetes swaps on a ConfigMap update.
			if name == base || name == "..data" {
				timer.Reset(opts.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				s.logger.Warn("policy file watcher", "path", s.path, "error", err)
			}
			timer.Reset(opts.Debounce)
		case <-timer.C:
			_, _ = s.reloadIfChanged()
		}
	}
}
