"""Graph objectives (full-graph node-level and batched graph-level) on jraph.GraphsTuple."""
from sslx.methods.graph.dgi import dgi
from sslx.methods.graph.grace import grace
from sslx.methods.graph.infograph import infograph
from sslx.methods.graph.gmi import gmi
from sslx.methods.graph.merit import merit
from sslx.methods.graph.mvgrl import mvgrl

__all__ = ["dgi", "grace", "infograph", "mvgrl", "gmi", "merit"]
