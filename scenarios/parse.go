package scenario

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error about a scenario's content.
var ErrInvalid = errors.New("invalid scenario")

// Error is one problem in a scenario file. Field is the path of the field in the file, such
// as vpcs[0].networks[1].cidr ("" for the file as a whole).
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Load reads and parses the scenario file at path; errors name path as given.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes the scenario in data, named name in errors, validates it as a whole and
// resolves it (defaults, endpoint addresses, VNIs). On error it returns every problem found,
// each an *Error, joined with errors.Join, and no scenario.
func Parse(name string, data []byte) (*Scenario, error) {
	d := &decoder{file: name, lines: map[string]int{}, bad: map[string]bool{}}
	s := &Scenario{File: name}
	d.document(data, s)
	if d.decoded {
		validate(d, s)
	}
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		errs := make([]error, len(d.errs))
		for i, e := range d.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// decoder turns a YAML node tree into the format's structs, strictly: an unknown or repeated
// field, or a value of the wrong kind, is an error. It remembers the line of every field and
// list item it saw, so that validation can name lines too.
type decoder struct {
	file    string
	lines   map[string]int  // field path -> line of its key (or list item)
	bad     map[string]bool // field paths that already have an error
	errs    []*Error
	decoded bool // the document was a mapping and was decoded (possibly with errors)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) document(data []byte, s *Scenario) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		line, msg := 1, err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		} else if msg == "EOF" {
			msg = "empty file"
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: msg})
		return
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.errs = append(d.errs, &Error{File: d.file, Line: next.Line, Msg: "a second YAML document; a file holds one scenario"})
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		d.errs = append(d.errs, &Error{File: d.file, Line: root.Line, Msg: "want a mapping (name, hosts, vpcs, steps, ...), got " + describe(root)})
		return
	}
	d.decoded = true
	d.decode(root, reflect.ValueOf(s).Elem(), "")
}

// errorf records an error about the field at path, on its line (or its nearest recorded
// parent's), unless the field already has one.
func (d *decoder) errorf(path, format string, args ...any) {
	if d.bad[path] {
		return
	}
	d.bad[path] = true
	d.errs = append(d.errs, &Error{File: d.file, Line: d.line(path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// failAt records an error about the node n at path.
func (d *decoder) failAt(n *yaml.Node, path, format string, args ...any) {
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	d.errorf(path, format, args...)
}

// has tells whether the file gave the field at path.
func (d *decoder) has(path string) bool { _, ok := d.lines[path]; return ok }

// line returns the line of the field at path or of its nearest parent the file gave.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		if path == "" {
			return 1
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// nodeDecoder is a type that decodes its own node.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	addrType     = reflect.TypeFor[netip.Addr]()
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, n, path)
			return
		}
	}
	switch v.Type() {
	case durationType:
		if s, ok := d.scalar(n, path, "a duration such as 2s or 500ms"); ok {
			t, err := time.ParseDuration(s)
			if err != nil {
				d.failAt(n, path, "%q is not a duration (want one such as 2s or 500ms)", s)
				return
			}
			v.SetInt(int64(t))
		}
		return
	case prefixType:
		if s, ok := d.scalar(n, path, "a CIDR such as 10.0.0.0/16"); ok {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				d.failAt(n, path, "%q is not a CIDR (want one such as 10.0.0.0/16)", s)
				return
			}
			v.Set(reflect.ValueOf(p))
		}
		return
	case addrType:
		if s, ok := d.scalar(n, path, "an IPv4 address"); ok {
			a, err := netip.ParseAddr(s)
			if err != nil {
				d.failAt(n, path, "%q is not an IP address", s)
				return
			}
			v.Set(reflect.ValueOf(a))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.failAt(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := index(path, i)
			d.lines[p] = item.Line
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			if n.Tag == "!!bool" || n.Tag == "!!null" {
				d.failAt(n, path, "want a string, got %s", describe(n))
				return
			}
			v.SetString(s)
		}
	case reflect.Int, reflect.Uint32:
		if s, ok := d.scalar(n, path, "an integer"); ok {
			var i int64
			if n.Tag != "!!int" || n.Decode(&i) != nil {
				d.failAt(n, path, "want an integer, got %q", s)
				return
			}
			if v.CanUint() {
				if i < 0 || v.OverflowUint(uint64(i)) {
					d.failAt(n, path, "%d is out of range", i)
					return
				}
				v.SetUint(uint64(i))
			} else {
				if v.OverflowInt(i) {
					d.failAt(n, path, "%d is out of range", i)
					return
				}
				v.SetInt(i)
			}
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "true or false"); ok {
			var b bool
			if n.Tag != "!!bool" || n.Decode(&b) != nil {
				d.failAt(n, path, "want true or false, got %q", s)
				return
			}
			v.SetBool(b)
		}
	default:
		panic(fmt.Sprintf("scenario: cannot decode into %v", v.Type()))
	}
}

// mapping decodes a mapping node into the struct v by yaml tags; a null node leaves v zero.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.failAt(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fields, names := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.errs = append(d.errs, &Error{File: d.file, Line: k.Line, Field: p, Msg: "given twice"})
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			d.failAt(k, p, "unknown field (want one of %s)", strings.Join(names, ", "))
			continue
		}
		d.lines[p] = k.Line
		d.decode(val, v.Field(f), p)
	}
}

// fieldsOf maps a struct's yaml keys to field indexes, and lists the keys in field order.
func fieldsOf(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		m[key] = i
		names = append(names, key)
	}
	return m, names
}

// scalar returns a scalar node's value; anything else is an error saying what was wanted.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.failAt(n, path, "want %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names a node's kind for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// decodeNode accepts a list of host names or a count n, which names the hosts h1..hn.
func (h *HostList) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch {
	case n.Kind == yaml.SequenceNode:
		var names []string
		d.decode(n, reflect.ValueOf(&names).Elem(), path)
		*h = names
	case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		c, err := strconv.Atoi(n.Value)
		if err != nil || c < 1 || c > MaxHosts {
			d.failAt(n, path, "host count %s is out of range 1..%d", n.Value, MaxHosts)
			return
		}
		*h = make(HostList, c)
		for i := range c {
			(*h)[i] = fmt.Sprintf("h%d", i+1)
			d.lines[index(path, i)] = n.Line
		}
	default:
		d.failAt(n, path, "want a list of host names or a count, got %s", describe(n))
	}
}

// decodeNode accepts a list of endpoints or a boolean.
func (r *Reach) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.SequenceNode {
		r.list = true
		d.decode(n, reflect.ValueOf(&r.Among).Elem(), path)
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		d.decode(n, reflect.ValueOf(&r.Want).Elem(), path)
		return
	}
	d.failAt(n, path, "want a list of endpoints or true/false, got %s", describe(n))
}
