"""Packaged search spaces: the YAML files beside this module (see autotransfer.space)."""
