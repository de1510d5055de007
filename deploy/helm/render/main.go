// Command render renders a Helm chart the way `helm template` does, for the
// features the Portcullis chart uses, on machines without the helm binary.
//
// It uses the same pieces Helm uses: Go's text/template, the sprig function
// library, and YAML through JSON (ghodss/yaml, the ancestor of sigs.k8s.io/yaml),
// so values are typed as Helm types them (numbers from YAML files are float64,
// numbers from --set are int64) and toYaml prints what Helm prints.
//
// Usage:
//
//	render [--name NAME] [--namespace NS] [--kube-version v1.29.0]
//	       [-f values.yaml]... [--set k=v,...]... [--set-string k=v]... CHART_DIR
//
// Build offline with Debian's Go packages:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/render ./deploy/helm/render
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

// chartMetadata mirrors Helm's chart.Metadata: templates see .Chart.Name,
// .Chart.Version, .Chart.AppVersion, ... with Go field names.
type chartMetadata struct {
	Name         string            `json:"name"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// kubeVersion mirrors Helm's chartutil.KubeVersion.
type kubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k kubeVersion) String() string { return k.Version }

// versionSet mirrors Helm's chartutil.VersionSet (.Capabilities.APIVersions).
type versionSet []string

// Has tells whether the API version (or version/kind) is known.
func (v versionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type capabilities struct {
	KubeVersion kubeVersion
	APIVersions versionSet
	HelmVersion map[string]string
}

// files is a minimal .Files: Get reads a file of the chart.
type files struct{ dir string }

// Get returns a chart file's content, or "" like Helm for a missing one.
func (f files) Get(name string) string {
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		return ""
	}
	return string(b)
}

type options struct {
	name, namespace, kube string
	valueFiles            []string
	sets                  []string
	setStrings            []string
	chartDir              string
}

func parseArgs(args []string) (options, error) {
	o := options{name: "release-name", namespace: "default", kube: "v1.29.0"}
	next := func(i *int, flag string) (string, error) {
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", flag)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var err error
		var v string
		key, inline, hasInline := strings.Cut(a, "=")
		if hasInline && strings.HasPrefix(a, "--") {
			a, v = key, inline
		} else if strings.HasPrefix(a, "-") {
			if v, err = next(&i, a); err != nil {
				return o, err
			}
		}
		switch a {
		case "--name":
			o.name = v
		case "--namespace", "-n":
			o.namespace = v
		case "--kube-version":
			o.kube = v
		case "-f", "--values":
			o.valueFiles = append(o.valueFiles, v)
		case "--set":
			o.sets = append(o.sets, v)
		case "--set-string":
			o.setStrings = append(o.setStrings, v)
		default:
			if strings.HasPrefix(a, "-") {
				return o, fmt.Errorf("unknown flag %s", a)
			}
			if o.chartDir != "" {
				return o, fmt.Errorf("more than one chart: %s and %s", o.chartDir, a)
			}
			o.chartDir = a
		}
	}
	if o.chartDir == "" {
		return o, errors.New("usage: render [--name N] [--namespace NS] [-f values.yaml] [--set k=v] CHART_DIR")
	}
	return o, nil
}

func readYAMLMap(path string) (map[string]interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// coalesce merges src over dst like Helm: maps merge deeply, anything else
// replaces, and a null in src deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = coalesce(dm, sm)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

// typedValue types a --set value as Helm's strvals does.
func typedValue(s string, asString bool) interface{} {
	if asString {
		return s
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if s == "0" {
		return int64(0)
	}
	if len(s) > 0 && s[0] != '0' {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// splitEscaped splits on sep, honouring backslash escapes of sep.
func splitEscaped(s string, sep byte) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == sep {
			cur.WriteByte(sep)
			i++
			continue
		}
		if s[i] == sep {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(parts, cur.String())
}

var indexRe = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

// applySet applies one "a.b[0].c=v,x=y" expression to vals.
func applySet(vals map[string]interface{}, expr string, asString bool) error {
	for _, pair := range splitEscaped(expr, ',') {
		key, raw, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("--set %q: no value", pair)
		}
		path := splitEscaped(key, '.')
		if err := setPath(vals, path, typedValue(raw, asString)); err != nil {
			return fmt.Errorf("--set %q: %w", pair, err)
		}
	}
	return nil
}

func setPath(m map[string]interface{}, path []string, v interface{}) error {
	head := path[0]
	if g := indexRe.FindStringSubmatch(head); g != nil {
		idx, _ := strconv.Atoi(g[2])
		list, _ := m[g[1]].([]interface{})
		for len(list) <= idx {
			list = append(list, nil)
		}
		if len(path) == 1 {
			list[idx] = v
		} else {
			child, ok := list[idx].(map[string]interface{})
			if !ok {
				child = map[string]interface{}{}
			}
			if err := setPath(child, path[1:], v); err != nil {
				return err
			}
			list[idx] = child
		}
		m[g[1]] = list
		return nil
	}
	if len(path) == 1 {
		m[head] = v
		return nil
	}
	child, ok := m[head].(map[string]interface{})
	if !ok {
		child = map[string]interface{}{}
	}
	if err := setPath(child, path[1:], v); err != nil {
		return err
	}
	m[head] = child
	return nil
}

func toYAML(v interface{}) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func toJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

type renderer struct {
	root      *template.Template
	chartName string
	depth     int
}

func (r *renderer) funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	// Helm removes these: a render must not depend on the machine.
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["toJson"] = toJSON
	f["fromJson"] = fromJSON
	f["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(msg)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(msg)
		}
		return val, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		// `helm template` has no cluster: lookup answers an empty map.
		return map[string]interface{}{}, nil
	}
	f["include"] = func(name string, data interface{}) (string, error) {
		r.depth++
		defer func() { r.depth-- }()
		if r.depth > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		var buf bytes.Buffer
		if err := r.root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := r.root.Clone()
		if err != nil {
			return "", err
		}
		t, err := clone.New(r.chartName + "/tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return f
}

// installOrder is Helm's releaseutil.InstallOrder.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

var docSep = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source, content, kind string
}

func run(o options) (string, error) {
	meta := chartMetadata{}
	chartYAML, err := os.ReadFile(filepath.Join(o.chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	if err := yaml.Unmarshal(chartYAML, &meta); err != nil {
		return "", fmt.Errorf("Chart.yaml: %w", err)
	}
	if meta.Name == "" {
		return "", errors.New("Chart.yaml: no name")
	}

	vals, err := readYAMLMap(filepath.Join(o.chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range o.valueFiles {
		user, err := readYAMLMap(f)
		if err != nil {
			return "", err
		}
		vals = coalesce(vals, user)
	}
	for _, s := range o.sets {
		if err := applySet(vals, s, false); err != nil {
			return "", err
		}
	}
	for _, s := range o.setStrings {
		if err := applySet(vals, s, true); err != nil {
			return "", err
		}
	}
	// A --set null deletes the key, as in Helm.
	vals = coalesce(map[string]interface{}{}, vals)

	major, minor := "1", "29"
	if parts := strings.SplitN(strings.TrimPrefix(o.kube, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	caps := capabilities{
		KubeVersion: kubeVersion{Version: o.kube, Major: major, Minor: minor, GitVersion: o.kube},
		APIVersions: versionSet{"v1", "apps/v1", "policy/v1", "autoscaling/v2", "autoscaling/v1"},
		HelmVersion: map[string]string{"Version": "v3.14.0"},
	}

	// Like Helm, refuse a chart whose kubeVersion range excludes the target.
	if meta.KubeVersion != "" {
		// sprig's semverCompare is Masterminds/semver, which Helm uses here.
		check := sprig.TxtFuncMap()["semverCompare"].(func(string, string) (bool, error))
		ok, err := check(meta.KubeVersion, o.kube)
		if err != nil {
			return "", fmt.Errorf("Chart.yaml kubeVersion: %w", err)
		}
		if !ok {
			return "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", meta.KubeVersion, o.kube)
		}
	}

	r := &renderer{chartName: meta.Name}
	r.root = template.New("gotpl").Option("missingkey=zero")
	r.root.Funcs(r.funcMap())

	tplDir := filepath.Join(o.chartDir, "templates")
	entries, err := os.ReadDir(tplDir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := meta.Name + "/templates/" + e.Name()
		b, err := os.ReadFile(filepath.Join(tplDir, e.Name()))
		if err != nil {
			return "", err
		}
		if _, err := r.root.New(name).Parse(string(b)); err != nil {
			return "", fmt.Errorf("parse error in %q: %w", name, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)

	var out []manifest
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		ext := filepath.Ext(base)
		if ext != ".yaml" && ext != ".yml" && ext != ".json" {
			continue
		}
		data := map[string]interface{}{
			"Values": vals,
			"Release": map[string]interface{}{
				"Name": o.name, "Namespace": o.namespace, "Service": "Helm",
				"IsInstall": true, "IsUpgrade": false, "Revision": 1,
			},
			"Chart":        meta,
			"Capabilities": caps,
			"Files":        files{dir: o.chartDir},
			"Template": map[string]interface{}{
				"Name": name, "BasePath": meta.Name + "/templates",
			},
		}
		var buf bytes.Buffer
		if err := r.root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", fmt.Errorf("execution error in %q: %w", name, err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range docSep.Split(strings.TrimSpace(text), -1) {
			doc = strings.TrimSpace(doc)
			if doc == "" {
				continue
			}
			head := struct {
				Kind string `json:"kind"`
			}{}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return "", fmt.Errorf("YAML parse error on %s: %w", name, err)
			}
			out = append(out, manifest{source: name, content: doc, kind: head.Kind})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := kindRank(out[i].kind), kindRank(out[j].kind)
		if ri != rj {
			return ri < rj
		}
		if ri == len(installOrder) {
			return out[i].kind < out[j].kind
		}
		return false
	})

	var b strings.Builder
	for _, m := range out {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	return b.String(), nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err == nil {
		var text string
		if text, err = run(o); err == nil {
			fmt.Print(text)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(1)
}
