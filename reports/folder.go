package reports

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// Files of a run folder.
const (
	ReportFile  = "report.json"
	SummaryFile = "summary.md"
)

// ErrSchema is returned by Load for a report.json of a schema this code does not read.
var ErrSchema = errors.New("unknown report schema")

// Write makes the run folder dir (parents too) with report.json, summary.md and the plots
// the data allows. An empty r.Schema is written as SchemaVersion; any other schema than
// SchemaVersion is refused, since the rest of r would be read under the wrong layout.
func Write(dir string, r *Report) error {
	out := *r
	if out.Schema == "" {
		out.Schema = SchemaVersion
	}
	if out.Schema != SchemaVersion {
		return fmt.Errorf("write report to %s: schema %q: %w (this code writes %s)", dir, out.Schema, ErrSchema, SchemaVersion)
	}
	if field := nonFinite(reflect.ValueOf(out), "report"); field != "" {
		return fmt.Errorf("write report to %s: %s is not a finite number (JSON has no NaN or infinity)", dir, field)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("make run folder: %w", err)
	}
	data, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := writeFile(filepath.Join(dir, ReportFile), append(data, '\n')); err != nil {
		return err
	}
	return render(dir, &out)
}

// Load reads a run folder's report.json (or, when path names a file, that file). It refuses
// a file without a schema or of a schema other than SchemaVersion, naming the file.
func Load(path string) (*Report, error) {
	file := path
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		file = filepath.Join(path, ReportFile)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load report: %w", err)
	}
	// The schema is read alone first: a file of another version may not even decode into
	// today's types, and its schema is the error worth showing.
	var head struct {
		Schema *string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("load report: %s: %w", file, jsonError(data, err))
	}
	switch {
	case head.Schema == nil:
		return nil, fmt.Errorf("load report: %s: no \"schema\" field: %w (this code reads %s)", file, ErrSchema, SchemaVersion)
	case *head.Schema != SchemaVersion:
		return nil, fmt.Errorf("load report: %s: schema %q: %w (this code reads %s)", file, *head.Schema, ErrSchema, SchemaVersion)
	}
	// Unknown fields are accepted: a version may gain fields, never change one's meaning.
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("load report: %s: %w", file, jsonError(data, err))
	}
	return &r, nil
}

// Render rewrites summary.md and the plots of the run folder dir from its report.json.
func Render(dir string) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("render %s: not a run folder (give the folder that holds %s)", dir, ReportFile)
	}
	r, err := Load(dir)
	if err != nil {
		return err
	}
	return render(dir, r)
}

func render(dir string, r *Report) error {
	plots, err := writePlots(dir, r)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, SummaryFile), []byte(markdown(r, plots)))
}

// writeFile replaces path whole or not at all, so a crash never leaves half a report.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// nonFinite names the first NaN or infinite number in v (path is v's name), "" when none:
// encoding/json refuses them without saying where they are.
func nonFinite(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Sprintf("%s (%v)", path, f)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return nonFinite(v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "-" {
				if bad := nonFinite(v.Field(i), path+"."+cmp.Or(name, f.Name)); bad != "" {
					return bad
				}
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if bad := nonFinite(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); bad != "" {
				return bad
			}
		}
	}
	return ""
}

// jsonError adds line:column to a decoding error, which encoding/json gives as an offset.
func jsonError(data []byte, err error) error {
	var offset int64
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	default:
		return err
	}
	before := data[:min(int(offset), len(data))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - strings.LastIndexByte(string(before), '\n')
	return fmt.Errorf("line %d column %d: %w", line, col, err)
}
