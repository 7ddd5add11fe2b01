package sqlmigrate

import (
	"errors"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	cases := []struct {
		name    string
		fs      fstest.MapFS
		want    []int
		wantErr bool
	}{
		{"ordered by version, not by name", fstest.MapFS{
			"m/0002_b.sql": file("B"), "m/1_a.sql": file("A"), "m/0003_c.sql": file("C"), "m/README": file("x"),
		}, []int{1, 2, 3}, false},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil, true},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.sql": file("B")}, nil, true},
		{"no version", fstest.MapFS{"m/initial.sql": file("A")}, nil, true},
		{"zero version", fstest.MapFS{"m/0000_a.sql": file("A")}, nil, true},
		{"not a number", fstest.MapFS{"m/v1_a.sql": file("A")}, nil, true},
		{"empty", fstest.MapFS{"m/README": file("x")}, nil, true},
		{"missing dir", fstest.MapFS{}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(tc.fs, "m")
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Load = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Load returned %d migrations, want %d", len(got), len(tc.want))
			}
			for i, m := range got {
				if m.Version != tc.want[i] {
					t.Errorf("migration %d has version %d, want %d", i, m.Version, tc.want[i])
				}
			}
			if got[0].SQL != "A" || got[0].Name != "1_a.sql" {
				t.Errorf("first migration = %+v", got[0])
			}
		})
	}
}

func TestPending(t *testing.T) {
	all := []Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	cases := []struct {
		current int
		want    int
		tooNew  bool
		wantErr bool
	}{
		{0, 3, false, false},
		{2, 1, false, false},
		{3, 0, false, false},
		{4, 0, true, true},
		{-1, 0, false, true},
	}
	for _, tc := range cases {
		got, err := Pending(all, tc.current)
		if (err != nil) != tc.wantErr {
			t.Fatalf("Pending(%d) error = %v, want error %v", tc.current, err, tc.wantErr)
		}
		if errors.Is(err, ErrSchemaTooNew) != tc.tooNew {
			t.Fatalf("Pending(%d) error = %v, ErrSchemaTooNew expected %v", tc.current, err, tc.tooNew)
		}
		if len(got) != tc.want {
			t.Fatalf("Pending(%d) returned %d, want %d", tc.current, len(got), tc.want)
		}
		if tc.want > 0 && got[0].Version != tc.current+1 {
			t.Fatalf("Pending(%d) starts at %d", tc.current, got[0].Version)
		}
	}
}
