package testbed_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	scenario "github.com/mizar-net/mizar/scenarios"
	"github.com/mizar-net/mizar/testbed"
)

// library is every scenario file the suite plays; a file added there is played (and needs a
// break, see breaks) without touching this suite.
const library = "../scenarios/*.yaml"

// TestScenarios runs the Ginkgo suite over the scenario library: each file played step by step
// on real namespaces, and each broken on purpose to prove its checks can fail.
func TestScenarios(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the scenario suite creates network namespaces and needs root (CI runs as root)")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "scenario library")
}

// libraryFiles lists the library at tree construction, so each file gets its own specs.
func libraryFiles() []string {
	files, err := filepath.Glob(library)
	if err != nil {
		panic(fmt.Sprintf("glob %s: %v", library, err))
	}
	return files
}

var _ = Describe("the scenario library", Label("privileged"), Serial, func() {
	files := libraryFiles()
	It("is not empty", func() {
		Expect(files).NotTo(BeEmpty(), "no scenario matches %s", library)
	})
	for _, f := range files {
		sc, err := scenario.Load(f)
		if err != nil {
			It("loads "+filepath.Base(f), func() { Expect(err).NotTo(HaveOccurred()) })
			continue
		}
		Describe(filepath.Base(f), Ordered, func() {
			var run *testbed.Run
			BeforeAll(func() {
				var err error
				run, err = testbed.Up(context.Background(), sc, testbed.RunOptions{Prefix: testbed.NewPrefix(), Progress: GinkgoWriter}, nil)
				Expect(err).NotTo(HaveOccurred())
			})
			for i, s := range sc.Steps {
				It(fmt.Sprintf("line %d: %s", s.Line, s.Kind()), func() {
					res := run.Step(context.Background(), i)
					if res.Err != nil {
						logCounters(run)
					}
					Expect(res.Err).NotTo(HaveOccurred(), "%s:%d: %s %s", sc.File, res.Line, res.Kind, res.What)
				})
			}
			AfterAll(func() {
				if run == nil {
					return
				}
				Expect(run.Down()).To(Succeed())
				expectNothingLeft(run.Prefix())
			})
		})
	}
})

// expectNothingLeft looks for one run's names only: other packages' tests run alongside.
func expectNothingLeft(prefix string) {
	GinkgoHelper()
	namespaces, links, err := testbed.Leftovers(prefix)
	Expect(err).NotTo(HaveOccurred())
	if len(namespaces)+len(links) > 0 {
		Expect(testbed.Clean(prefix)).To(Succeed())
	}
	Expect(namespaces).To(BeEmpty(), "namespaces left behind")
	Expect(links).To(BeEmpty(), "links left behind")
}

// logCounters shows every host's data-plane counters, to tell where a failed check's packets went.
func logCounters(run *testbed.Run) {
	for _, h := range run.Cluster().Hosts() {
		c, err := h.DP.Counters()
		if err != nil {
			GinkgoWriter.Printf("host %s: counters: %v\n", h.Name, err)
			continue
		}
		GinkgoWriter.Printf("host %s (%v): %v\n", h.Name, h.IP, c)
	}
}
