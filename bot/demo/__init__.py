"""Demo-data generators for `kefu db seed`: the demo shop, its service history, showcase tickets."""
