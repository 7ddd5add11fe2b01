package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Event names, as config.NotificationEvents spells them.
const (
	EventNewDevice              = "new_device"
	EventFactorAdded            = "factor_added"
	EventFactorChanged          = "factor_changed"
	EventFactorRemoved          = "factor_removed"
	EventBackupCodesRegenerated = "backup_codes_regenerated"
	EventBackupCodesLow         = "backup_codes_low"
	EventLockout                = "lockout"
	// EventCodeReused: a code that had already been accepted was entered
	// again and refused (ASVS 2.8.5): someone may have seen it.
	EventCodeReused = "code_reused"
)

// Events lists every event name.
func Events() []string {
	return []string{EventNewDevice, EventFactorAdded, EventFactorChanged, EventFactorRemoved,
		EventBackupCodesRegenerated, EventBackupCodesLow, EventLockout, EventCodeReused}
}

var titles = map[string]string{
	EventNewDevice:              "new sign-in to your account",
	EventFactorAdded:            "a second factor was added",
	EventFactorChanged:          "a second factor was changed",
	EventFactorRemoved:          "a second factor was removed",
	EventBackupCodesRegenerated: "new backup codes were generated",
	EventBackupCodesLow:         "you are running out of backup codes",
	EventLockout:                "sign-in attempts were blocked",
	EventCodeReused:             "a code already used was entered again",
}

// DefaultTemplates are the built-in message bodies (text/template over
// Data).
var defaultTemplates = map[string]string{
	EventNewDevice: "Your {{.Issuer}} account was signed in to from a device we had not seen: {{.Device}}" +
		"{{if .IP}}, address {{.IP}}{{end}}, at {{.Time}}.\n\nIf this was you, nothing needs doing. If not, change your password now and review your second factors.\n",
	EventFactorAdded: "A second factor ({{.Factor}}) was added to your {{.Issuer}} account at {{.Time}}{{if .IP}} from {{.IP}}{{end}}.\n\n" +
		"If you did not do this, contact your administrator at once.\n",
	EventFactorChanged: "Your {{.Factor}} for {{.Issuer}} was changed at {{.Time}}{{if .IP}} from {{.IP}}{{end}}.\n\n" +
		"If you did not do this, contact your administrator at once.\n",
	EventFactorRemoved: "A second factor ({{.Factor}}) was removed from your {{.Issuer}} account at {{.Time}}{{if .Admin}} by an administrator{{end}}." +
		" Devices you trusted must pass a second factor again.\n\nIf you did not expect this, contact your administrator.\n",
	EventBackupCodesRegenerated: "A new set of backup codes was generated for your {{.Issuer}} account at {{.Time}}{{if .IP}} from {{.IP}}{{end}}." +
		" The earlier codes no longer work.\n\nIf you did not do this, contact your administrator at once.\n",
	EventBackupCodesLow: "Only {{.Remaining}} unused backup codes are left on your {{.Issuer}} account. Generate a new set before you run out.\n",
	EventCodeReused: "A {{.Factor}} code that had already been used was entered again for your {{.Issuer}} account at {{.Time}}{{if .IP}} from {{.IP}}{{end}}," +
		" and refused.\n\nIf this was not you, someone may have seen your code and know your password: change your password.\n",
	EventLockout: "Too many wrong codes were entered for your {{.Issuer}} account{{if .Factor}} ({{.Factor}}){{end}}; further attempts are blocked" +
		"{{if .Until}} until {{.Until}}{{end}}.\n\nIf this was not you, someone may know your password: change it.\n",
}

// Data is what templates see.
type Data struct {
	Event     string
	Title     string
	Time      string
	IP        string
	Device    string
	Factor    string
	Remaining string
	Until     string
	Admin     bool
	Issuer    string
}

// ErrNoRecipient: the user has no address on the channel (no e-mail, no
// phone number); the notification is listed but not sent.
var ErrNoRecipient = errors.New("notify: the user has no address on this channel")

// Recipients finds where to tell a user.
type Recipients interface {
	// Recipient returns userID's address on channel (delivery.ChannelEmail
	// or delivery.ChannelSMS), or ErrNoRecipient.
	Recipient(ctx context.Context, userID, channel string) (string, error)
}

// Config configures New. Store is required; Sender and Recipients are
// required to send anything (without them events are only listed).
type Config struct {
	Store store.Notifications
	// Audit is read to tell a regenerated backup-code set from a first one.
	Audit store.Audit
	// Sender delivers messages; nil lists events without sending.
	Sender     delivery.MessageSender
	Recipients Recipients
	// Channel is delivery.ChannelEmail (default) or delivery.ChannelSMS.
	Channel string
	// Events are the events sent; others are listed as skipped. Defaults
	// to all.
	Events []string
	// Subject and Templates (by event) override the built-in texts.
	Subject   string
	Templates map[string]string
	// Issuer names the service in messages. Defaults to "stepup-bridge".
	Issuer string
	// MaxAttempts of one delivery. Defaults to 5.
	MaxAttempts int
	// BackupCodesRemaining reports a user's unused backup codes, and
	// LowWatermark the count at which backup_codes_low is sent (once per
	// set: when a use brings the count to it). Nil leaves the event out.
	BackupCodesRemaining func(ctx context.Context, userID string) (int, error)
	LowWatermark         int
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Poll is how often Run looks for due deliveries besides being woken.
	// Defaults to 5 seconds.
	Poll   time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Notifier records and delivers notifications. It is safe for concurrent
// use.
type Notifier struct {
	cfg       Config
	log       *slog.Logger
	subject   *template.Template
	templates map[string]*template.Template
	wake      chan struct{}
	m         *metrics
}

// New checks cfg and parses the templates.
func New(cfg Config) (*Notifier, error) {
	if cfg.Store == nil {
		return nil, errors.New("notify: Store is required")
	}
	if cfg.Sender != nil && cfg.Recipients == nil {
		return nil, errors.New("notify: a Sender needs Recipients")
	}
	if cfg.Channel == "" {
		cfg.Channel = delivery.ChannelEmail
	}
	if cfg.Channel != delivery.ChannelEmail && cfg.Channel != delivery.ChannelSMS {
		return nil, fmt.Errorf("notify: channel %q is not email or sms", cfg.Channel)
	}
	if cfg.Events == nil {
		cfg.Events = Events()
	}
	if cfg.Subject == "" {
		cfg.Subject = "Security alert: {{.Title}}"
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "stepup-bridge"
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	n := &Notifier{cfg: cfg, log: log, templates: map[string]*template.Template{}, wake: make(chan struct{}, 1), m: m}
	if n.subject, err = template.New("subject").Option("missingkey=error").Parse(cfg.Subject); err != nil {
		return nil, fmt.Errorf("notify: subject: %w", err)
	}
	for _, ev := range Events() {
		body := defaultTemplates[ev]
		if t, ok := cfg.Templates[ev]; ok && strings.TrimSpace(t) != "" {
			body = t
		}
		if n.templates[ev], err = template.New(ev).Option("missingkey=error").Parse(body); err != nil {
			return nil, fmt.Errorf("notify: template %s: %w", ev, err)
		}
	}
	for name := range cfg.Templates {
		if _, ok := titles[name]; !ok {
			return nil, fmt.Errorf("notify: template for unknown event %q", name)
		}
	}
	return n, nil
}

// Event is one security event of one user.
type Event struct {
	// Key deduplicates: one event, one key, whoever records it.
	Key    string
	UserID string
	Name   string
	Time   time.Time
	// Details are facts for the message and the activity list: ip,
	// device, factor, remaining, until, by. Never secrets.
	Details map[string]string
}

// Record stores e once (a second Record with the same Key is a no-op) and
// wakes delivery. It returns whether e was new.
func (n *Notifier) Record(ctx context.Context, e Event) (bool, error) {
	if e.Key == "" || e.UserID == "" {
		return false, errors.New("notify: event without key or user")
	}
	if _, ok := titles[e.Name]; !ok {
		return false, fmt.Errorf("notify: unknown event %q", e.Name)
	}
	if e.Time.IsZero() {
		e.Time = n.cfg.Now()
	}
	status := store.NotificationPending
	if n.cfg.Sender == nil || !slices.Contains(n.cfg.Events, e.Name) {
		status = store.NotificationSkipped
	}
	err := n.cfg.Store.CreateNotification(ctx, store.Notification{ID: e.Key, UserID: e.UserID, Event: e.Name,
		Details: e.Details, CreatedAt: e.Time, Status: status, NextAttemptAt: e.Time})
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("notify: recording %s for %s: %w", e.Name, e.UserID, err)
	}
	n.m.recorded.WithLabelValues(e.Name, strconv.FormatBool(status == store.NotificationPending)).Inc()
	if status == store.NotificationPending {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
	return true, nil
}

// NewSignIn records a sign-in of userID from the kind of device label at
// ip; it is told once per user, device kind and address. A login on a
// trusted device is not a new device: do not call it then.
func (n *Notifier) NewSignIn(ctx context.Context, userID, label, ip string) error {
	sum := sha256.Sum256([]byte(userID + "\x00" + label + "\x00" + ip))
	_, err := n.Record(ctx, Event{Key: EventNewDevice + ":" + hex.EncodeToString(sum[:16]), UserID: userID, Name: EventNewDevice,
		Details: map[string]string{"device": label, "ip": ip}})
	return err
}

// Run delivers due notifications until ctx is done: at once when Record
// wakes it, and every Poll otherwise (retries, claims of replicas that
// died).
func (n *Notifier) Run(ctx context.Context) {
	t := time.NewTicker(n.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := n.Deliver(ctx); err != nil && ctx.Err() == nil {
			n.log.WarnContext(ctx, "notify: delivering", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
	}
}

// claimFor is how long a replica holds a notification it is sending.
const claimFor = time.Minute

var errNotDue = errors.New("notify: not due")

// Deliver sends every due notification once and returns how many were
// sent.
func (n *Notifier) Deliver(ctx context.Context) (int, error) {
	if n.cfg.Sender == nil {
		return 0, nil
	}
	now := n.cfg.Now()
	due, err := n.cfg.Store.DueNotifications(ctx, now, 100)
	if err != nil {
		return 0, fmt.Errorf("notify: listing due notifications: %w", err)
	}
	sent := 0
	for _, cand := range due {
		c, err := n.cfg.Store.UpdateNotification(ctx, cand.ID, func(cur store.Notification) (store.Notification, error) {
			if (cur.Status != store.NotificationPending && cur.Status != store.NotificationSending) || cur.NextAttemptAt.After(now) {
				return cur, errNotDue
			}
			cur.Status, cur.Attempts, cur.NextAttemptAt = store.NotificationSending, cur.Attempts+1, now.Add(claimFor)
			return cur, nil
		})
		if errors.Is(err, errNotDue) {
			continue // another replica has it
		}
		if err != nil {
			return sent, fmt.Errorf("notify: claiming %s: %w", cand.ID, err)
		}
		serr := n.send(ctx, c)
		settled, err := n.cfg.Store.UpdateNotification(context.WithoutCancel(ctx), c.ID, func(cur store.Notification) (store.Notification, error) {
			return n.settle(cur, serr), nil
		})
		if err != nil {
			return sent, fmt.Errorf("notify: recording delivery of %s: %w", c.ID, err)
		}
		outcome := map[string]string{store.NotificationSent: "sent", store.NotificationPending: "retry",
			store.NotificationFailed: "failed", store.NotificationSkipped: "no_recipient"}[settled.Status]
		n.m.deliveries.WithLabelValues(c.Event, outcome).Inc()
		if serr == nil {
			sent++
		}
	}
	return sent, nil
}

// settle records the outcome of one attempt.
func (n *Notifier) settle(cur store.Notification, serr error) store.Notification {
	now := n.cfg.Now()
	switch {
	case serr == nil:
		cur.Status, cur.SentAt, cur.LastError = store.NotificationSent, now, ""
	case errors.Is(serr, ErrNoRecipient):
		cur.Status, cur.LastError = store.NotificationSkipped, "no recipient"
	case cur.Attempts >= n.cfg.MaxAttempts:
		cur.Status, cur.LastError = store.NotificationFailed, truncate(serr.Error())
	default:
		backoff := 30 * time.Second << min(cur.Attempts-1, 8)
		cur.Status, cur.NextAttemptAt, cur.LastError = store.NotificationPending, now.Add(backoff), truncate(serr.Error())
	}
	return cur
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500]
	}
	return s
}

func (n *Notifier) send(ctx context.Context, c store.Notification) error {
	to, err := n.cfg.Recipients.Recipient(ctx, c.UserID, n.cfg.Channel)
	if err != nil {
		return err
	}
	if to == "" {
		return ErrNoRecipient
	}
	subject, body, err := n.Render(c.Event, c.Details, c.CreatedAt)
	if err != nil {
		return err
	}
	m := delivery.Message{Channel: n.cfg.Channel, To: to, Body: body, ID: MessageID(c.ID)}
	if n.cfg.Channel == delivery.ChannelEmail {
		m.Subject = subject
	}
	return n.cfg.Sender.Send(ctx, m)
}

// MessageID is the delivery id of notification key: stable across retries
// and replicas, so a receiver can drop a duplicate.
func MessageID(key string) string {
	sum := sha256.Sum256([]byte("stepup-bridge notification " + key))
	return hex.EncodeToString(sum[:16])
}

// Render builds the subject and body of event with details at t.
func (n *Notifier) Render(event string, details map[string]string, t time.Time) (subject, body string, err error) {
	tmpl, ok := n.templates[event]
	if !ok {
		return "", "", fmt.Errorf("notify: unknown event %q", event)
	}
	d := Data{Event: event, Title: titles[event], Time: t.UTC().Format("2006-01-02 15:04 MST"), IP: details["ip"],
		Device: details["device"], Factor: factorName(details["factor"]), Remaining: details["remaining"],
		Until: details["until"], Admin: details["by"] == "admin", Issuer: n.cfg.Issuer}
	var sb, bb strings.Builder
	if err := n.subject.Execute(&sb, d); err != nil {
		return "", "", fmt.Errorf("notify: subject of %s: %w", event, err)
	}
	if err := tmpl.Execute(&bb, d); err != nil {
		return "", "", fmt.Errorf("notify: body of %s: %w", event, err)
	}
	return sb.String(), bb.String(), nil
}

func factorName(f string) string {
	switch f {
	case "totp":
		return "authenticator app (TOTP)"
	case "hotp":
		return "authenticator app (HOTP)"
	case "pin":
		return "PIN"
	case "backup_code":
		return "backup codes"
	case "flash_call":
		return "flash call"
	case "sms":
		return "SMS codes"
	case "email":
		return "e-mail codes"
	case "all":
		return ""
	}
	return f
}

// Activity is one line of a user's security activity.
type Activity struct {
	Event   string            `json:"event"`
	Title   string            `json:"title"`
	Time    time.Time         `json:"time"`
	Details map[string]string `json:"details,omitempty"`
	// Notified is "sent", "pending", "failed" or "not_sent".
	Notified string `json:"notified"`
}

// Activity lists userID's security events, newest first, at most limit
// (0 means 50).
func (n *Notifier) Activity(ctx context.Context, userID string, limit int) ([]Activity, error) {
	rows, err := n.cfg.Store.ListNotifications(ctx, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("notify: listing activity of %s: %w", userID, err)
	}
	out := make([]Activity, 0, len(rows))
	for _, r := range rows {
		a := Activity{Event: r.Event, Title: titles[r.Event], Time: r.CreatedAt, Details: r.Details}
		switch r.Status {
		case store.NotificationSent, store.NotificationFailed:
			a.Notified = r.Status
		case store.NotificationSkipped:
			a.Notified = "not_sent"
		default:
			a.Notified = "pending"
		}
		out = append(out, a)
	}
	return out, nil
}

// itoa is strconv.Itoa, named for the details it fills.
func itoa(v int) string { return strconv.Itoa(v) }
