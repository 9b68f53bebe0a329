package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The dashboard is checked against Grafana's own dashboard schema, as JSON Schema: no Grafana
// server can be installed here (docs/METRICS.md, "Grafana"). testdata/grafana/README.md names
// the schemas' source and version.
const grafanaSchemaDir = "testdata/grafana"

// panelSchemas maps a panel type to the JSON Schema of its plugin's options, for every panel
// type the dashboard uses; a panel of another type fails TestGrafanaDashboardSchema, so a new
// type comes with its schema. "custom" is true where the schema also defines the
// fieldConfig.defaults.custom object (FieldConfig) strictly enough to check.
var panelSchemas = map[string]struct {
	file   string
	custom bool
}{
	"timeseries":     {"timeseries.jsonschema.json", false},
	"stat":           {"stat.jsonschema.json", false},
	"table":          {"table.jsonschema.json", false},
	"state-timeline": {"statetimeline.jsonschema.json", true},
}

func compileGrafanaSchema(t *testing.T, c *jsonschema.Compiler, file, ptr string) *jsonschema.Schema {
	t.Helper()
	url := "file:///grafana/" + file
	sch, err := c.Compile(url + ptr)
	if err != nil {
		t.Fatalf("compile %s%s: %v", file, ptr, err)
	}
	return sch
}

func grafanaCompiler(t *testing.T) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	files, err := filepath.Glob(filepath.Join(grafanaSchemaDir, "*.jsonschema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in %s: %v", grafanaSchemaDir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if filepath.Base(f) == "dashboard.jsonschema.json" {
			relaxAnyValues(t, doc)
		}
		if err := c.AddResource("file:///grafana/"+filepath.Base(f), doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return c
}

// anyValues are the places where Grafana's CUE dashboard kind allows any value (`options?: _`
// of #MatcherConfig, `value?: _` of #DynamicConfigValue) but the generated JSON Schema demands an
// object: Grafana itself writes a string there for the most common override, a byName matcher
// ("options": "Hashrate"), and a number, string or list as an override's value. These two are
// relaxed to "any value", and nothing else; a schema update that changes them fails here.
var anyValues = [][2]string{{"MatcherConfig", "options"}, {"DynamicConfigValue", "value"}}

func relaxAnyValues(t *testing.T, doc any) {
	t.Helper()
	defs := doc.(map[string]any)["definitions"].(map[string]any)
	for _, av := range anyValues {
		props := defs[av[0]].(map[string]any)["properties"].(map[string]any)
		p, ok := props[av[1]].(map[string]any)
		if !ok || p["type"] != "object" || len(p["additionalProperties"].(map[string]any)) != 0 {
			t.Fatalf("dashboard schema: %s.%s is no longer {type: object, additionalProperties: {}}: %v", av[0], av[1], p)
		}
		props[av[1]] = map[string]any{} // any value
	}
}

// readDashboardInstance returns grafana-dashboard.json as a JSON Schema instance (numbers kept
// as json.Number, so an integer stays an integer).
func readDashboardInstance(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatal("grafana-dashboard.json is not an object")
	}
	return m
}

// TestGrafanaDashboardSchema validates grafana-dashboard.json against Grafana's dashboard schema
// (the v1 dashboard kind, as JSON Schema), each panel's options against its plugin's schema, and
// the layout rules the schema cannot state: panels inside the 24-column grid without overlap,
// unique ids, a schemaVersion Grafana migrates from.
func TestGrafanaDashboardSchema(t *testing.T) {
	c := grafanaCompiler(t)
	d := readDashboardInstance(t)

	if err := compileGrafanaSchema(t, c, "dashboard.jsonschema.json", "").Validate(d); err != nil {
		t.Errorf("grafana-dashboard.json does not match Grafana's dashboard schema:\n%v", err)
	}

	// schemaVersion: Grafana migrates every dashboard at or above its oldest supported version
	// (13 as of Grafana 12) up to its own; the schema's default is the newest it describes.
	var schema struct {
		Definitions struct {
			Dashboard struct {
				Properties struct {
					SchemaVersion struct {
						Default int `json:"default"`
					} `json:"schemaVersion"`
				} `json:"properties"`
			} `json:"Dashboard"`
		} `json:"definitions"`
	}
	raw, err := os.ReadFile(filepath.Join(grafanaSchemaDir, "dashboard.jsonschema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	newest := schema.Definitions.Dashboard.Properties.SchemaVersion.Default
	if sv, err := d["schemaVersion"].(json.Number).Int64(); err != nil || sv < 36 || sv > int64(newest) {
		t.Errorf("schemaVersion %v: want 36..%d (Grafana 9.4 up to the schema's own)", d["schemaVersion"], newest)
	}

	// Panel options against the plugin schemas.
	optSchemas := map[string]*jsonschema.Schema{}
	customSchemas := map[string]*jsonschema.Schema{}
	for typ, s := range panelSchemas {
		optSchemas[typ] = compileGrafanaSchema(t, c, s.file, "#/definitions/Options")
		if s.custom {
			customSchemas[typ] = compileGrafanaSchema(t, c, s.file, "#/definitions/FieldConfig")
		}
	}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	ids := map[string]bool{}
	panels, _ := d["panels"].([]any)
	for i, p := range panels {
		pm := p.(map[string]any)
		typ, _ := pm["type"].(string)
		title, _ := pm["title"].(string)
		name := fmt.Sprintf("panel %d (%s %q)", i, typ, title)
		if id := fmt.Sprint(pm["id"]); ids[id] {
			t.Errorf("%s: id %s twice", name, id)
		} else {
			ids[id] = true
		}
		if typ != "row" {
			if _, ok := panelSchemas[typ]; !ok {
				t.Errorf("%s: no plugin schema for panel type %q in %s", name, typ, grafanaSchemaDir)
			} else {
				if err := optSchemas[typ].Validate(pm["options"]); err != nil {
					t.Errorf("%s: options do not match the %s plugin schema:\n%v", name, typ, err)
				}
				if cs := customSchemas[typ]; cs != nil {
					custom := any(map[string]any{})
					if fc, ok := pm["fieldConfig"].(map[string]any); ok {
						if def, ok := fc["defaults"].(map[string]any); ok && def["custom"] != nil {
							custom = def["custom"]
						}
					}
					if err := cs.Validate(custom); err != nil {
						t.Errorf("%s: fieldConfig.defaults.custom does not match the %s plugin schema:\n%v", name, typ, err)
					}
				}
			}
			if ds, ok := pm["datasource"].(map[string]any); !ok || ds["uid"] != "${datasource}" {
				t.Errorf("%s: datasource %v, want the ${datasource} variable", name, pm["datasource"])
			}
			targets, _ := pm["targets"].([]any)
			refs := map[string]bool{}
			for _, tg := range targets {
				ref, _ := tg.(map[string]any)["refId"].(string)
				if ref == "" || refs[ref] {
					t.Errorf("%s: target refId %q empty or repeated", name, ref)
				}
				refs[ref] = true
			}
		}
		gp, _ := pm["gridPos"].(map[string]any)
		geti := func(k string) int {
			n, _ := gp[k].(json.Number).Int64()
			return int(n)
		}
		x, y, w, h := geti("x"), geti("y"), geti("w"), geti("h")
		if x+w > 24 {
			t.Errorf("%s: gridPos x %d + w %d past the 24 columns", name, x, w)
		}
		for cx := x; cx < x+w; cx++ {
			for cy := y; cy < y+h; cy++ {
				if other, ok := taken[cell{cx, cy}]; ok {
					t.Errorf("%s overlaps %s at column %d row %d", name, other, cx, cy)
					cy, cx = y+h, x+w // one report per pair is enough
					break
				}
				taken[cell{cx, cy}] = name
			}
		}
	}
}

// TestGrafanaSchemaRejects makes sure the validation bites: a few broken copies of the dashboard
// must fail it.
func TestGrafanaSchemaRejects(t *testing.T) {
	c := grafanaCompiler(t)
	sch := compileGrafanaSchema(t, c, "dashboard.jsonschema.json", "")
	for name, breakIt := range map[string]func(d map[string]any){
		"no schemaVersion":  func(d map[string]any) { delete(d, "schemaVersion") },
		"unknown top key":   func(d map[string]any) { d["panelz"] = []any{} },
		"gridPos w over 24": func(d map[string]any) { panel(d, 1)["gridPos"].(map[string]any)["w"] = json.Number("25") },
		"panel without type": func(d map[string]any) {
			delete(panel(d, 1), "type")
		},
		"targets not a list": func(d map[string]any) { panel(d, 1)["targets"] = "up" },
		"variable without name": func(d map[string]any) {
			delete(d["templating"].(map[string]any)["list"].([]any)[0].(map[string]any), "name")
		},
	} {
		d := readDashboardInstance(t)
		breakIt(d)
		if err := sch.Validate(d); err == nil {
			t.Errorf("%s: the schema accepted it", name)
		}
	}
}

func panel(d map[string]any, i int) map[string]any { return d["panels"].([]any)[i].(map[string]any) }

// dashboardQuestions are the questions the built-in dashboard (httpapi/ui) answers, each with
// the Grafana panel that answers it: its title, type and the series its queries must use.
// Columns of the built-in tables that no metric carries are listed in docs/METRICS.md
// ("Grafana") and not here.
var dashboardQuestions = []struct {
	question string // the built-in dashboard's card, table or chart
	title    string
	typ      string
	series   []string
}{
	{"Totals: how many miners are connected?", "Miners connected", "stat", []string{"proxy_miners_connected"}},
	{"Totals: what is the hashrate?", "Hashrate (window)", "stat", []string{"proxy_pool_speed"}},
	{"Totals: how many shares are accepted per minute?", "Accepted shares / min", "stat", []string{"proxy_user_accepted_total"}},
	{"Totals: how many shares are rejected per minute?", "Rejected shares / min", "stat", []string{"proxy_shares_rejected_total"}},
	{"Totals: how many pool connections (upstreams) are up?", "Upstreams connected", "stat", []string{"proxy_upstreams_connected"}},
	{"Workers: each worker's user, rig, pool, algorithm, difficulty, hashrate, accepted and rejected shares, connected or not",
		"Workers", "table", []string{"proxy_worker_speed", "proxy_worker_difficulty", "proxy_worker_accepted", "proxy_worker_sended", "proxy_worker_up"}},
	{"Hashrate over time, per user", "Hashrate per user", "timeseries", []string{"proxy_user_speed"}},
	{"Hashrate over time, per pool", "Hashrate per pool", "timeseries", []string{"proxy_pool_speed"}},
	{"Pools: each pool's algorithm, state (up or down), miners and hashrate", "Pools", "table",
		[]string{"proxy_pool_up", "proxy_pool_speed", "proxy_worker_up", "proxy_pool_divider"}},
}

// TestGrafanaDashboardQuestions fails when a question of the built-in dashboard has no panel in
// the Grafana dashboard (by title), or the panel has another type or does not query the series
// that answer it.
func TestGrafanaDashboardQuestions(t *testing.T) {
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	for _, q := range dashboardQuestions {
		i := slices.IndexFunc(d.Panels, func(p struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		}) bool {
			return p.Title == q.title
		})
		if i < 0 {
			t.Errorf("%s: no panel titled %q", q.question, q.title)
			continue
		}
		p := d.Panels[i]
		if p.Type != q.typ {
			t.Errorf("%s: panel %q is a %s, want a %s", q.question, q.title, p.Type, q.typ)
		}
		var exprs []string
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
		all := strings.Join(exprs, "\n")
		for _, s := range q.series {
			if !slices.Contains(seriesNameRe.FindAllString(all, -1), s) {
				t.Errorf("%s: panel %q does not query %s", q.question, q.title, s)
			}
		}
	}
}
