package config

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
)

var update = flag.Bool("update", false, "rewrite docs/config.md from config.go")

// TestReferenceIsCurrent keeps docs/config.md generated from the Config
// struct's doc comments and Default(): a key added without docs fails here.
// Run `go test ./config -run TestReferenceIsCurrent -update` to regenerate.
func TestReferenceIsCurrent(t *testing.T) {
	got := reference(t)
	path := "../docs/config.md"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (regenerate with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/config.md is out of date: go test ./config -run TestReferenceIsCurrent -update")
	}
}

func reference(t *testing.T) []byte {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	// struct name -> field name -> doc
	docs := map[string]map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return true
		}
		m := map[string]string{}
		for _, fld := range st.Fields.List {
			if len(fld.Names) == 0 || fld.Doc == nil {
				continue
			}
			m[fld.Names[0].Name] = strings.Join(strings.Fields(fld.Doc.Text()), " ")
		}
		docs[ts.Name.Name] = m
		return false
	})

	defaults := map[string]any{}
	if err := mapstructure.Decode(Default(), &defaults); err != nil {
		t.Fatal(err)
	}
	flat := map[string]any{}
	flatten("", defaults, flat)

	var b bytes.Buffer
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from `config/config.go` by `go test ./config -run TestReferenceIsCurrent -update`; do not edit by hand.\n\n")
	b.WriteString("Every key can be set in the YAML file (`--config`), as an environment variable, or with `--set key=value`;\n")
	b.WriteString("precedence, highest first: flags, environment, file, defaults. Lists in the environment are comma-separated.\n")
	b.WriteString("Secrets print as `[redacted]` in `serve --print-config`.\n\n")
	b.WriteString("| key | environment | default | meaning |\n|---|---|---|---|\n")
	var walk func(t reflect.Type, prefix string)
	walk = func(rt reflect.Type, prefix string) {
		for i := 0; i < rt.NumField(); i++ {
			fld := rt.Field(i)
			tag := fld.Tag.Get("mapstructure")
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			if fld.Type.Kind() == reflect.Struct && fld.Type.PkgPath() == rt.PkgPath() {
				walk(fld.Type, key)
				continue
			}
			doc := docs[rt.Name()][fld.Name]
			if doc == "" {
				t.Errorf("%s (%s.%s) has no doc comment", key, rt.Name(), fld.Name)
			}
			def := fmt.Sprint(flat[key])
			switch v := flat[key].(type) {
			case nil:
				def = ""
			case []string:
				def = strings.Join(v, ", ")
			case []Secret:
				def = ""
			}
			if def == "0s" || def == "[]" || def == "map[]" {
				def = ""
			}
			if fld.Type == reflect.TypeOf(Secret("")) {
				def = "(secret)"
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", key, EnvName(key), codeOrEmpty(def), strings.ReplaceAll(doc, "|", "\\|"))
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return b.Bytes()
}

func codeOrEmpty(s string) string {
	if s == "" || s == "(secret)" {
		return s
	}
	return "`" + s + "`"
}
