package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The published JSON Schemas (docs/schema/COMMAND.json, draft 2020-12):
// every test that parses a command's real JSON output first validates each
// line against its command's schema, so a field the schema does not allow
// (additionalProperties false), a missing required one or a wrong type
// fails the test.

var schemaCache sync.Map // command -> *jsonschema.Schema

func commandSchema(t testing.TB, command string) *jsonschema.Schema {
	t.Helper()
	if s, ok := schemaCache.Load(command); ok {
		return s.(*jsonschema.Schema)
	}
	path, err := filepath.Abs(filepath.Join("..", "..", "docs", "schema", command+".json"))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("schema of %s: %v", command, err)
	}
	schemaCache.Store(command, s)
	return s
}

// validateLine fails t unless line is one JSON value valid for command's
// schema.
func validateLine(t testing.TB, command string, line []byte) {
	t.Helper()
	if err := schemaError(t, command, line); err != nil {
		t.Errorf("synq %s JSON does not match docs/schema/%s.json: %v\n%s", command, command, err, line)
	}
}

func schemaError(t testing.TB, command string, line []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
	if err != nil {
		return err
	}
	return commandSchema(t, command).Validate(v)
}

// validateLines validates every non-empty line of out.
func validateLines(t testing.TB, command, out string) {
	t.Helper()
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		validateLine(t, command, []byte(l))
		n++
	}
	if n == 0 {
		t.Errorf("synq %s printed no JSON to validate", command)
	}
}

// assertSchemaStrict proves the schema check can fail on a real line: the
// line with an unknown field, or without a required one, must not validate.
func assertSchemaStrict(t *testing.T, command string, line []byte, required string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	m["drops"] = 1 // a field renamed away: must be refused
	b, _ := json.Marshal(m)
	if schemaError(t, command, b) == nil {
		t.Errorf("docs/schema/%s.json accepts an unknown field", command)
	}
	delete(m, "drops")
	delete(m, required)
	b, _ = json.Marshal(m)
	if schemaError(t, command, b) == nil {
		t.Errorf("docs/schema/%s.json accepts a line without %q", command, required)
	}
}

// TestSchemasPublished: docs/schema holds a schema, that compiles, for
// every command with --output json, and nothing else.
func TestSchemasPublished(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "schema", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	want := []string{"doctor", "latency", "listeners", "states", "stats", "top", "trace"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("docs/schema has %v, want %v", got, want)
	}
	for _, c := range want {
		commandSchema(t, c)
	}
}
