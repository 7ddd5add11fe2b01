package token

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStepUpEntryMarshal(t *testing.T) {
	t.Parallel()
	e := StepUpEntry{SID: "s1", ACR: "2", AMR: []string{"pin"}, IAT: 1700000000, EXP: 1700003600}
	if got, want := e.Marshal(), `{"sid":"s1","acr":"2","amr":["pin"],"iat":1700000000,"exp":1700003600}`; got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
	if got := (StepUpEntry{SID: "s", ACR: "2", IAT: 1, EXP: 2}).Marshal(); !strings.Contains(got, `"amr":[]`) {
		t.Fatalf("nil amr marshalled as %s", got)
	}
	bad := StepUpEntry{SID: "s\xff\"}", ACR: "2", IAT: 1, EXP: 2}
	if !json.Valid([]byte(bad.Marshal())) {
		t.Fatalf("invalid JSON from %q", bad.SID)
	}
}

func TestParseStepUpEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    StepUpEntry
		wantErr bool
	}{
		{name: "canonical", in: `{"sid":"s1","acr":"2","amr":["pin","totp"],"iat":1700000000,"exp":1700003600}`,
			want: StepUpEntry{SID: "s1", ACR: "2", AMR: []string{"pin", "totp"}, IAT: 1700000000, EXP: 1700003600}},
		{name: "no amr", in: `{"sid":"s1","acr":"2","iat":1,"exp":2}`, want: StepUpEntry{SID: "s1", ACR: "2", IAT: 1, EXP: 2}},
		{name: "float dates", in: `{"sid":"s1","acr":"2","amr":[],"iat":1.7e9,"exp":1700003600.0}`,
			want: StepUpEntry{SID: "s1", ACR: "2", AMR: []string{}, IAT: 1700000000, EXP: 1700003600}},
		{name: "unknown field tolerated", in: `{"sid":"s1","acr":"2","iat":1,"exp":2,"x":true}`, want: StepUpEntry{SID: "s1", ACR: "2", IAT: 1, EXP: 2}},
		{name: "fractional iat", in: `{"sid":"s1","acr":"2","iat":1.5,"exp":2}`, wantErr: true},
		{name: "acr as number", in: `{"sid":"s1","acr":2,"iat":1,"exp":2}`, wantErr: true},
		{name: "no sid", in: `{"acr":"2","iat":1,"exp":2}`, wantErr: true},
		{name: "empty sid", in: `{"sid":"","acr":"2","iat":1,"exp":2}`, wantErr: true},
		{name: "exp before iat", in: `{"sid":"s","acr":"2","iat":5,"exp":2}`, wantErr: true},
		{name: "amr not strings", in: `{"sid":"s","acr":"2","amr":[1],"iat":1,"exp":2}`, wantErr: true},
		{name: "amr empty string", in: `{"sid":"s","acr":"2","amr":[""],"iat":1,"exp":2}`, wantErr: true},
		{name: "array", in: `[]`, wantErr: true},
		{name: "null", in: `null`, wantErr: true},
		{name: "truncated", in: `{"sid":"s","acr":"2","iat":1,"exp":`, wantErr: true},
		{name: "huge exp", in: `{"sid":"s","acr":"2","iat":1,"exp":1e300}`, wantErr: true},
		{name: "too long", in: `{"sid":"` + strings.Repeat("a", MaxEntryLen) + `","acr":"2","iat":1,"exp":2}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStepUpEntry(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidEntry) {
					t.Fatalf("err = %v, want ErrInvalidEntry", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseStepUpClaim(t *testing.T) {
	t.Parallel()
	entry := `{"sid":"s1","acr":"2","amr":["pin"],"iat":1,"exp":2}`
	var obj map[string]any
	if err := json.Unmarshal([]byte(entry), &obj); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   any
		want int
	}{
		{"array of objects", []any{obj, obj}, 2},
		{"single object", obj, 1},
		{"string", entry, 1},
		{"array of strings", []any{entry, "garbage", 3.0}, 1},
		{"string holding an array", "[" + entry + "," + entry + "]", 2},
		{"malformed object", map[string]any{"sid": "s"}, 0},
		{"nil", nil, 0},
		{"number", 3.0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ParseStepUpClaim(tc.in)
			if len(got) != tc.want {
				t.Fatalf("got %d entries (%+v), want %d", len(got), got, tc.want)
			}
			for _, e := range got {
				if e.SID != "s1" || e.ACR != "2" || e.EXP != 2 {
					t.Fatalf("entry %+v", e)
				}
			}
		})
	}
}

func TestParseStepUpValues(t *testing.T) {
	t.Parallel()
	entries, dropped := ParseStepUpValues([]string{`{"sid":"s","acr":"2","iat":1,"exp":2}`, `{not json`, ``})
	if len(entries) != 1 || dropped != 2 {
		t.Fatalf("entries %d dropped %d, want 1 and 2", len(entries), dropped)
	}
}

func TestPruneEntries(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	e := func(sid string, iat, exp int64) StepUpEntry {
		return StepUpEntry{SID: sid, ACR: "2", AMR: []string{"pin"}, IAT: iat, EXP: exp}
	}
	tests := []struct {
		name string
		in   []StepUpEntry
		max  int
		want []string
	}{
		{"drops expired", []StepUpEntry{e("a", 1, 999), e("b", 2, 1000), e("c", 3, 1001)}, 10, []string{"c"}},
		{"keeps newest max", []StepUpEntry{e("c", 30, 2000), e("a", 10, 2000), e("b", 20, 2000)}, 2, []string{"b", "c"}},
		{"no bound", []StepUpEntry{e("b", 20, 2000), e("a", 10, 2000)}, 0, []string{"a", "b"}},
		{"dedupes", []StepUpEntry{e("a", 10, 2000), e("a", 10, 2000)}, 5, []string{"a"}},
		{"empty", nil, 5, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := append([]StepUpEntry(nil), tc.in...)
			got := PruneEntries(tc.in, now, tc.max)
			sids := []string{}
			for _, g := range got {
				sids = append(sids, g.SID)
			}
			if !reflect.DeepEqual(sids, tc.want) {
				t.Fatalf("got %v, want %v", sids, tc.want)
			}
			if !reflect.DeepEqual(in, tc.in) {
				t.Fatal("input modified")
			}
		})
	}
}

func FuzzParseStepUpEntry(f *testing.F) {
	f.Add(`{"sid":"s1","acr":"2","amr":["pin"],"iat":1700000000,"exp":1700003600}`)
	f.Add(`{"sid":"s1","acr":"2","iat":1.7e9,"exp":1.8e9}`)
	f.Add(`[{"sid":1}]`)
	f.Add(`{"sid":"\u0000","acr":"\ud800","iat":1,"exp":2}`)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseStepUpEntry(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("error %v does not wrap ErrInvalidEntry", err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("parsed entry fails Validate: %v", err)
		}
		m := e.Marshal()
		if !json.Valid([]byte(m)) {
			t.Fatalf("Marshal gave invalid JSON %q", m)
		}
		back, err := ParseStepUpEntry(m)
		if err != nil {
			t.Fatalf("round trip of %q: %v", m, err)
		}
		if back.Marshal() != m {
			t.Fatalf("round trip changed %q into %q", m, back.Marshal())
		}
	})
}

func FuzzParseClaims(f *testing.F) {
	f.Add([]byte(`{"iss":"x","exp":1,"aud":["a"],"stepup":[{"sid":"s","acr":"2","iat":1,"exp":2}]}`))
	f.Add([]byte(`{"aud":"a","realm_access":{"roles":[1,"r"]},"resource_access":{"c":{"roles":["x"]},"d":3},"stepup":"[{}]"}`))
	f.Add([]byte(`{"exp":1e400}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseClaims(payload, "")
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for _, e := range c.StepUp {
			if err := e.Validate(); err != nil {
				t.Fatalf("untrustworthy entry kept: %+v: %v", e, err)
			}
		}
	})
}
