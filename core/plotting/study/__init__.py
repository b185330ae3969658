"""The plots of a study: its series (the children's results reduced per configuration) and the
plots drawn from it, a module per plot idea; core.plotting.catalog lists them."""
