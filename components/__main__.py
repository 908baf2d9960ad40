"""Entry point of the component provider plugin (see PulumiPlugin.yaml).

The Pulumi language host runs this file when another program uses the
package; ``component_provider_host`` infers the schema from the type
annotations of the components listed here and serves ``construct`` calls.
"""

import prepull
from pulumi.provider.experimental import component_provider_host

if __name__ == "__main__":
    # The guard matters: the analyzer may import this module, and hosting must start only once.
    component_provider_host([prepull.ImagePrePuller], "prepull", version=prepull.__version__)
