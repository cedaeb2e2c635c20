package resolve_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"hipnet.dev/hipnet/resolve"
)

// A hosts file first, then DNS: a name the file does not know is looked up
// as a HIP RR; a record DNS refuses is an error, not a fall-through.
func ExampleChain() {
	hosts, err := resolve.ParseHosts(strings.NewReader(`
# name      HIT                   locators
broker      2001:2a::b            192.0.2.7:10500 [2001:db8::7]:10500
`))
	if err != nil {
		log.Fatal(err)
	}
	r := resolve.Chain{hosts, &resolve.DNS{}}

	rec, err := r.Resolve(context.Background(), "Broker.")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Name, rec.HIT, rec.Locators)
	// Output: broker 2001:2a::b [192.0.2.7:10500 [2001:db8::7]:10500]
}
