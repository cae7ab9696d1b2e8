"""Real-trace tooling: record csd/IPI/TLB tracepoints with ftrace and import them as parameters.

``mcsmp trace record`` (:mod:`mcsmp.trace.record`) writes a self-describing ftrace text file;
``mcsmp trace import`` parses and pairs it (:mod:`mcsmp.trace.parse`) and builds a parameter
fragment plus a report (:mod:`mcsmp.trace.fragment`). See ``docs/traces.md``.
"""

from .fragment import build_fragment, write_report
from .parse import TraceResult, parse_trace

__all__ = ["TraceResult", "build_fragment", "parse_trace", "write_report"]
