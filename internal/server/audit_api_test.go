package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

type auditPage struct {
	Events []struct {
		Seq    int64     `json:"seq"`
		Time   time.Time `json:"time"`
		Type   string    `json:"type"`
		UserID string    `json:"user_id"`
	} `json:"events"`
	NextAfter *int64 `json:"next_after"`
}

// seedAudit appends n events alternating between two users and two types,
// one minute apart from base.
func seedAudit(t *testing.T, e *adminEnv, n int, base time.Time) {
	t.Helper()
	for i := range n {
		_, err := e.st.AppendAudit(context.Background(), store.AuditEvent{
			Time: base.Add(time.Duration(i) * time.Minute), Type: []string{"stepup.success", "stepup.failure"}[i%2],
			Actor: fmt.Sprintf("u%d", i%2), UserID: fmt.Sprintf("u%d", i%2), Factor: "pin", Outcome: "x",
			Details: map[string]string{"i": fmt.Sprint(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (e *adminEnv) auditPage(t *testing.T, q url.Values) auditPage {
	t.Helper()
	rec := e.do("GET", "/v1/admin/audit?"+q.Encode(), tokAdmin)
	wantStatus(t, rec, http.StatusOK)
	var p auditPage
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuditFiltersAndPages(t *testing.T) {
	e := newAdminEnv(t)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	seedAudit(t, e, 30, base)

	cases := []struct {
		name  string
		q     url.Values
		count int
		check func(t *testing.T, p auditPage)
	}{
		{"all", url.Values{"limit": {"1000"}}, 30, nil},
		{"user", url.Values{"user": {"u1"}}, 15, func(t *testing.T, p auditPage) {
			for _, ev := range p.Events {
				if ev.UserID != "u1" {
					t.Fatalf("user filter let through %+v", ev)
				}
			}
		}},
		{"type", url.Values{"type": {"stepup.failure"}}, 15, func(t *testing.T, p auditPage) {
			for _, ev := range p.Events {
				if ev.Type != "stepup.failure" {
					t.Fatalf("type filter let through %+v", ev)
				}
			}
		}},
		{"types comma separated", url.Values{"type": {"stepup.failure,stepup.success"}}, 30, nil},
		{"types repeated", url.Values{"type": {"stepup.failure", "nothing"}}, 15, nil},
		{"from inclusive to exclusive", url.Values{"from": {base.Add(10 * time.Minute).Format(time.RFC3339)}, "to": {base.Add(20 * time.Minute).Format(time.RFC3339)}}, 10,
			func(t *testing.T, p auditPage) {
				if !p.Events[0].Time.Equal(base.Add(10*time.Minute)) || !p.Events[9].Time.Equal(base.Add(19*time.Minute)) {
					t.Fatalf("time range = %v .. %v", p.Events[0].Time, p.Events[9].Time)
				}
			}},
		{"limit", url.Values{"limit": {"7"}}, 7, func(t *testing.T, p auditPage) {
			if p.NextAfter == nil || *p.NextAfter != p.Events[6].Seq {
				t.Fatalf("next_after = %v, want the last seq %d", p.NextAfter, p.Events[6].Seq)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := e.auditPage(t, tc.q)
			if len(p.Events) != tc.count {
				t.Fatalf("%d events, want %d", len(p.Events), tc.count)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}

	t.Run("paging visits every event once, in order", func(t *testing.T) {
		seen := map[int64]bool{}
		var after int64
		pages := 0
		for {
			p := e.auditPage(t, url.Values{"limit": {"8"}, "after": {fmt.Sprint(after)}})
			pages++
			for _, ev := range p.Events {
				if seen[ev.Seq] || ev.Seq <= after {
					t.Fatalf("seq %d twice or out of order", ev.Seq)
				}
				seen[ev.Seq] = true
				after = ev.Seq
			}
			if p.NextAfter == nil {
				break
			}
			if pages > 10 {
				t.Fatal("paging does not end")
			}
		}
		if len(seen) != 30 || pages != 4 {
			t.Fatalf("paged %d events in %d pages, want 30 in 4", len(seen), pages)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=-1", "after=x", "from=yesterday",
			"to=2024-13-01T00:00:00Z", "from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z"} {
			wantJSONError(t, e.do("GET", "/v1/admin/audit?"+q, tokAdmin), http.StatusBadRequest, "invalid_request")
		}
	})
}

func TestAuditExportStreamsEverything(t *testing.T) {
	e := newAdminEnv(t)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	seedAudit(t, e, 2500, base) // three store pages of 1000
	for _, tc := range []struct {
		name  string
		q     string
		count int
	}{
		{"all", "", 2500},
		{"filtered", "user=u0", 1250},
		{"capped", "limit=3", 3},
		{"after", "after=2400", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do("GET", "/v1/admin/audit/export?"+tc.q, tokAdmin)
			wantStatus(t, rec, http.StatusOK)
			if ct := rec.Header().Get("Content-Type"); ct != "application/x-ndjson" {
				t.Fatalf("Content-Type = %q", ct)
			}
			sc := bufio.NewScanner(rec.Body)
			n := 0
			var last int64
			for sc.Scan() {
				var ev struct {
					Seq  int64  `json:"seq"`
					Type string `json:"type"`
				}
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Type == "" {
					t.Fatalf("line %d is not an event: %v: %s", n, err, sc.Bytes())
				}
				if ev.Seq <= last {
					t.Fatalf("seq %d after %d", ev.Seq, last)
				}
				last = ev.Seq
				n++
			}
			if n != tc.count {
				t.Fatalf("%d lines, want %d", n, tc.count)
			}
		})
	}
}

func TestAuditCannotBeChanged(t *testing.T) {
	e := newAdminEnv(t)
	seedAudit(t, e, 3, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, m := range []string{"PUT", "PATCH", "DELETE", "POST"} {
		for _, p := range []string{"/v1/admin/audit", "/v1/admin/audit/1", "/v1/admin/audit/export", "/v1/admin/audit?user=u0"} {
			t.Run(m+" "+p, func(t *testing.T) {
				rec := e.do(m, p, tokAdmin)
				wantJSONError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
				if rec.Header().Get("Allow") != "GET, HEAD" {
					t.Fatalf("Allow = %q", rec.Header().Get("Allow"))
				}
			})
		}
	}
	if n := len(e.audit(store.AuditQuery{Limit: 1000})); n != 3 {
		t.Fatalf("%d events after the attempts, want 3", n)
	}
}
