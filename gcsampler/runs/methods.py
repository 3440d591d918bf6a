"""The registry of methods: ``--method`` name -> :class:`~gcsampler.runs.method.Method`."""

from gcsampler.core.registry import Registry
from gcsampler.runs import rejection_run, splitting_run

METHODS = Registry("--method", {method.name: method
                                for method in (rejection_run.METHOD, splitting_run.METHOD)})
