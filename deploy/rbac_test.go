package deploy

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// kubeSource is the file whose informers the ClusterRole must cover,
// relative to this package.
const kubeSource = "../control/kube.go"

// groupResource is one API resource an RBAC rule names.
type groupResource struct{ group, resource string }

// informerGroups maps client-go's informer factory group methods to API
// groups; an informer of another group in control/kube.go needs a line here.
var informerGroups = map[string]string{
	"Core":      "",
	"Discovery": "discovery.k8s.io",
}

// informerResources returns the resources control/kube.go builds informers
// for, from calls of the form factory.Group().Version().Resource().Informer()
// in file (or src when it is not nil, as go/parser takes it).
func informerResources(file string, src any) ([]groupResource, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, src, 0)
	if err != nil {
		return nil, err
	}
	var out []groupResource
	var errs []error
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		chain := callChain(call)
		if len(chain) < 5 || chain[len(chain)-1] != "Informer" {
			return true
		}
		g, resource := chain[len(chain)-4], chain[len(chain)-2]
		group, ok := informerGroups[g]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: informer %s: unknown group %s; add it to informerGroups", file, strings.Join(chain, "."), g))
			return true
		}
		// Factory methods are the plural kind; the resource is its lower case.
		gr := groupResource{group, strings.ToLower(resource)}
		if !slices.Contains(out, gr) {
			out = append(out, gr)
		}
		return true
	})
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no informers found", file))
	}
	return out, errors.Join(errs...)
}

// callChain returns the names of a selector and call chain such as
// factory.Core().V1().Services().Informer(), or nil for other expressions.
func callChain(e ast.Expr) []string {
	var rev []string
	for {
		switch x := e.(type) {
		case *ast.CallExpr:
			e = x.Fun
		case *ast.SelectorExpr:
			rev = append(rev, x.Sel.Name)
			e = x.X
		case *ast.Ident:
			rev = append(rev, x.Name)
			slices.Reverse(rev)
			return rev
		default:
			return nil
		}
	}
}

// informerVerbs are what a shared informer's reflector does: list, then
// watch from the list's resource version. It never gets single objects.
var informerVerbs = []string{"list", "watch"}

func TestClusterRoleMatchesInformers(t *testing.T) {
	b := loadManifests(t)
	want, err := informerResources(kubeSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	granted := map[groupResource][]string{}
	for i, r := range b.clusterRole.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("ClusterRole %s rule %d: resourceNames %q, nonResourceURLs %q, want neither", b.clusterRole.Name, i, r.ResourceNames, r.NonResourceURLs)
		}
		for _, field := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
			if slices.Contains(field, rbacv1.ResourceAll) {
				t.Errorf("ClusterRole %s rule %d: wildcard in %q", b.clusterRole.Name, i, field)
			}
		}
		for _, v := range r.Verbs {
			// control emits no Events (it has no event recorder), so no
			// write verb at all; add create/patch on events here and in
			// clusterrole.yaml if it ever does.
			if !slices.Contains(informerVerbs, v) {
				t.Errorf("ClusterRole %s rule %d: verb %q, want only %q", b.clusterRole.Name, i, v, informerVerbs)
			}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				gr := groupResource{g, res}
				granted[gr] = append(granted[gr], r.Verbs...)
			}
		}
	}
	for _, gr := range want {
		verbs := granted[gr]
		for _, v := range informerVerbs {
			if !slices.Contains(verbs, v) {
				t.Errorf("ClusterRole %s: no %s on %q in group %q, which %s watches", b.clusterRole.Name, v, gr.resource, gr.group, kubeSource)
			}
		}
	}
	for gr := range granted {
		if !slices.Contains(want, gr) {
			t.Errorf("ClusterRole %s grants %q in group %q, which %s does not watch", b.clusterRole.Name, gr.resource, gr.group, kubeSource)
		}
	}
}

func TestInformerResources(t *testing.T) {
	// A guard on the parser, which TestClusterRoleMatchesInformers trusts:
	// it finds the informers kube.go has today, and refuses what it cannot
	// map to an RBAC resource.
	got, err := informerResources(kubeSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, gr := range []groupResource{{"", "services"}, {"discovery.k8s.io", "endpointslices"}, {"", "nodes"}} {
		if !slices.Contains(got, gr) {
			t.Errorf("informerResources(%s) = %v, missing %v", kubeSource, got, gr)
		}
	}
	for _, tc := range []struct{ name, src string }{
		{"unknown group", `package control
func f() { factory.Apps().V1().Deployments().Informer() }`},
		{"no informers", `package control
func f() { factory.Core().V1().Services().Lister() }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := informerResources("kube.go", tc.src); err == nil {
				t.Errorf("informerResources(%q) = %v, want an error", tc.src, got)
			}
		})
	}
}
