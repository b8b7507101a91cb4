"""The URNs a real engine gives a program's resources, and the URNs each one also answers to through aliases.

The mock monitor builds a URN from its parent's type alone; the engine
builds it from the parent's whole type chain
(``urn:pulumi:<stack>::<project>::<Fleet>$<Stamp>$<Plan>$<type>::<name>``), and a
resource is the same resource as the one of an earlier deployment whose URN
is its own or one of its aliases: those it declares and those it inherits
from each alias of its parent (the rules of pulumi.runtime.resource.all_aliases,
which the engine applies to alias specs). :func:`identities` computes both
from a :class:`~tests.infra.conftest.StackRun`, so a test can prove that a
refactor keeps every resource of an existing stack (none replaced).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.infra.conftest import STACK_NAME, StackRun, project_name


@dataclass(frozen=True)
class Identity:
    type: str
    name: str
    urn: str
    aliases: frozenset[str]

    @property
    def known_as(self) -> frozenset[str]:
        return self.aliases | {self.urn}


def _urn(parent: str | None, type_: str, name: str) -> str:
    qualified = type_ if parent is None else parent.split("::")[2] + "$" + type_
    return f"urn:pulumi:{STACK_NAME}::{project_name()}::{qualified}::{name}"


def _inherited_name(name: str, parent_name: str, parent_alias: str) -> str:
    if name.startswith(parent_name):
        return parent_alias.rsplit("::", 1)[1] + name[len(parent_name) :]
    return name


def identities(run: StackRun) -> list[Identity]:
    """Every resource of ``run`` (the stack itself excluded) with its engine URN and aliases, in registration order."""
    by_mock_urn: dict[str, Identity] = {}
    names: dict[str, str] = {}
    found: list[Identity] = []
    for registration in run.resources:
        parent = by_mock_urn.get(registration.parent)
        own: set[tuple[str | None, str, str]] = set()
        for alias in registration.request.aliases:
            if alias.HasField("urn"):
                raise AssertionError(f"{registration.name}: alias by URN {alias.urn}; use an alias spec")
            spec = alias.spec
            if spec.noParent:
                alias_parent = None
            elif spec.parentUrn:
                target = by_mock_urn.get(spec.parentUrn)
                if target is not None:
                    alias_parent = target.urn
                elif spec.parentUrn.split("::")[2] == "pulumi:pulumi:Stack":
                    alias_parent = None
                else:  # a URN the program built (pulumi.create_urn) of a resource no longer registered; the mock
                    # monitor's parent URNs carry the stack's type, which the engine's never do
                    alias_parent = spec.parentUrn.replace("::pulumi:pulumi:Stack$", "::", 1)
            else:
                alias_parent = parent.urn if parent else None
            own.add((alias_parent, spec.type or registration.type, spec.name or registration.name))
        aliases = {_urn(*alias) for alias in own}
        if parent is not None:
            for parent_alias in parent.aliases:
                for _, type_, name in {(None, registration.type, registration.name), *own}:
                    aliases.add(_urn(parent_alias, type_, _inherited_name(name, names[parent.urn], parent_alias)))
        identity = Identity(
            registration.type,
            registration.name,
            _urn(parent.urn if parent else None, registration.type, registration.name),
            frozenset(aliases),
        )
        by_mock_urn[registration.urn] = identity
        names[identity.urn] = registration.name
        found.append(identity)
    return found
