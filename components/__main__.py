"""Entry point of the component provider plugin (see PulumiPlugin.yaml).

The Pulumi language host runs this file when another program uses the
package; prepull.provider infers the schema from the type annotations of
ImagePrePuller and serves ``construct`` calls.
"""

if __name__ == "__main__":
    # The guard matters: the analyzer may import this module, and hosting must start only once.
    from prepull.provider import serve

    serve()
