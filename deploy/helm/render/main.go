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
//	render [--name NAME] [--namespace NS] [--kube-version v1.29.0] [--notes]
//	       [-f values.yaml]... [--set k=v,...]... [--set-string k=v]... CHART_DIR
//
// --notes prints the rendered NOTES.txt (what `helm install` shows) instead of
// the manifests; the manifests are rendered all the same, so errors show.
//
// Build offline with Debian's Go packages:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/render .   (in deploy/helm/render)
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

type options struct {
	name, namespace, kube string
	valueFiles            []string
	sets                  []string
	setStrings            []string
	chartDir              string
	// notes prints the rendered NOTES.txt instead of the manifests.
	notes bool
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
		if a == "--notes" {
			o.notes = true
			continue
		}
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
