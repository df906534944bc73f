"""Classifier labels -> what an ecologist records: an observation type and a taxon.

The shipped model speaks CIFAR-10 (bird, cat, deer, ...) and the test scenes add a few
European mammals; a camera-trap data standard wants ``observationType`` (animal, human,
vehicle, blank, unknown) and, for animals, a ``scientificName``. A CIFAR label is often
coarser than a species ("deer", "bird"), so it maps to the narrowest taxon it certainly
names: deer -> Cervidae (family), bird -> Aves (class), frog -> Anura (order). A trap that
knows better (only roe deer here) overrides a label in the config's ``[export] taxa``.

A label that is neither in the map nor in the overrides becomes an ``unknown`` observation:
guessing a taxon from a free-text label would put wrong names into biodiversity databases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OBSERVATION_TYPES = ("animal", "human", "vehicle", "blank", "unknown")
NON_ANIMAL_TYPES = frozenset(OBSERVATION_TYPES) - {"animal"}
TAXON_RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species", "subspecies")


@dataclass(frozen=True)
class Taxon:
    """What a label stands for; ``scientific_name`` is set for animals only."""

    observation_type: str
    scientific_name: str = ""
    rank: str = ""  # Camtrap DP taxonRank; empty when unknown
    vernacular: str = ""  # English name
    higher: Mapping[str, str] = field(default_factory=dict)  # kingdom .. genus

    @property
    def is_animal(self) -> bool:
        return self.observation_type == "animal"


def _animal(name: str, rank: str, vernacular: str, lineage: str) -> Taxon:
    """An animal taxon; ``lineage`` is its class, order, family and genus, as far as known."""
    higher = {"kingdom": "Animalia", "phylum": "Chordata"}
    higher |= dict(zip(("class", "order", "family", "genus"), lineage.split(), strict=False))
    return Taxon("animal", name, rank, vernacular, higher)


# The shipped model's labels (CIFAR-10) and the scene generator's, plus common aliases.
DEFAULT_TAXA: dict[str, Taxon] = {
    "bird": _animal("Aves", "class", "birds", "Aves"),
    "cat": _animal("Felis catus", "species", "domestic cat", "Mammalia Carnivora Felidae Felis"),
    "deer": _animal("Cervidae", "family", "deer", "Mammalia Artiodactyla Cervidae"),
    "dog": _animal("Canis familiaris", "species", "dog", "Mammalia Carnivora Canidae Canis"),
    "frog": _animal("Anura", "order", "frogs and toads", "Amphibia Anura"),
    "horse": _animal("Equus caballus", "species", "horse", "Mammalia Perissodactyla Equidae Equus"),
    "boar": _animal("Sus scrofa", "species", "wild boar", "Mammalia Artiodactyla Suidae Sus"),
    "fox": _animal("Vulpes vulpes", "species", "red fox", "Mammalia Carnivora Canidae Vulpes"),
    "hare": _animal("Lepus", "genus", "hares", "Mammalia Lagomorpha Leporidae Lepus"),
    "person": Taxon("human"),
    "people": Taxon("human"),
    "human": Taxon("human"),
    "airplane": Taxon("vehicle"),
    "automobile": Taxon("vehicle"),
    "car": Taxon("vehicle"),
    "truck": Taxon("vehicle"),
    "ship": Taxon("vehicle"),
    "boat": Taxon("vehicle"),
    "bicycle": Taxon("vehicle"),
    "motorcycle": Taxon("vehicle"),
    "vehicle": Taxon("vehicle"),
    "unknown": Taxon("unknown"),
    "blank": Taxon("blank"),
    "empty": Taxon("blank"),
}

UNMAPPED = Taxon("unknown")


def rank_of(scientific_name: str) -> str:
    """The rank a bare name shows by its shape: two words a species, three a subspecies;
    one word (a genus, family, ...) cannot be told apart, so it stays empty."""
    words = scientific_name.split()
    return {2: "species", 3: "subspecies"}.get(len(words), "")


class TaxonMap:
    """The built-in map with the config's overrides on top (``[export] taxa``)."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._taxa = dict(DEFAULT_TAXA)
        for label, value in (overrides or {}).items():
            self._taxa[label] = self._parse(label, value)

    @staticmethod
    def _parse(label: str, value: str) -> Taxon:
        if value in NON_ANIMAL_TYPES:
            return Taxon(value)
        default = DEFAULT_TAXA.get(label)
        if default is not None and default.scientific_name == value:
            return default
        return Taxon("animal", value, rank_of(value), vernacular=label)

    def __getitem__(self, label: str) -> Taxon:
        return self._taxa.get(label, UNMAPPED)

    def knows(self, label: str) -> bool:
        return label in self._taxa

    def unmapped(self, labels: set[str] | list[str]) -> list[str]:
        """The labels that fall back to ``unknown`` because nothing maps them."""
        return sorted(label for label in set(labels) if label not in self._taxa)
