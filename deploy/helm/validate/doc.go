// Package validate checks the Helm chart in ../fieldseal: every values combination under ../fieldseal/ci
// renders with the pinned helm, every rendered object decodes strictly (unknown fields refused) into the
// k8s.io/api type of its kind, and the deployment invariants hold (see chart_test.go).
package validate
