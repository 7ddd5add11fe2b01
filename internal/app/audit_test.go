package app

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"log/slog"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/store/sqlite"
)

func TestAuditEventsAreLoggedOnceStored(t *testing.T) {
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ls := loggedStore{Store: st, log: slog.New(slog.NewJSONHandler(&buf, nil))}
	e, err := ls.AppendAudit(context.Background(), store.AuditEvent{Time: time.Unix(1700000000, 0), Type: "stepup.granted",
		Actor: "u1", UserID: "u1", Factor: "pin", SessionID: "s1", IP: "192.0.2.1", Outcome: "success",
		Details: map[string]string{"acr": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line: %v: %s", err, buf.String())
	}
	if line["msg"] != "audit" || line["type"] != "stepup.granted" || line["seq"] != float64(e.Seq) ||
		line["details"].(map[string]any)["acr"] != "2" {
		t.Fatalf("logged %v", line)
	}

	// A failed append is not logged as an event.
	buf.Reset()
	st.Close()
	if _, err := ls.AppendAudit(context.Background(), store.AuditEvent{Time: time.Now(), Type: "x"}); err == nil {
		t.Fatal("append on a closed store succeeded")
	}
	if buf.Len() != 0 {
		t.Fatalf("failed append logged: %s", buf.String())
	}
}
