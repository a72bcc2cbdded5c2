"""Alert rules as data: the default rule file and its schema (validated up front, errors name line and field)."""

from .loader import DEFAULT_RULES, RulesError, load_rules
from .schema import Rule, RuleFile, RuleKind, Severity

__all__ = ["DEFAULT_RULES", "Rule", "RuleFile", "RuleKind", "RulesError", "Severity", "load_rules"]
