"""Container runtime: images, containers, namespaces, cgroups, security."""
