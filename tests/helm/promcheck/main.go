// promcheck: rule files checked as `promtool check rules` checks them
// (rulefmt.ParseFile: the YAML shape with no unknown field, every expr
// parsed as PromQL, label names, annotation templates).
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p := parser.NewParser(parser.Options{})
	bad := 0
	for _, f := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, logger)
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
			bad++
		}
		if len(errs) == 0 {
			n := 0
			for _, g := range groups.Groups {
				n += len(g.Rules)
			}
			fmt.Printf("%s: %d rules ok\n", f, n)
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}
