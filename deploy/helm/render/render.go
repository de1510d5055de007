// Rendering: every template of the chart, split into documents and sorted in Helm's install order.

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

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
	notes := ""
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		ext := filepath.Ext(base)
		if base != "NOTES.txt" && ext != ".yaml" && ext != ".yml" && ext != ".json" {
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
		if base == "NOTES.txt" {
			notes = text
			continue
		}
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

	if o.notes {
		return notes, nil
	}

	var b strings.Builder
	for _, m := range out {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	return b.String(), nil
}
