"""One answer per span, and only answers in the right format.

DIETClassifier and RegexEntityExtractor both look for order numbers, e-mails, phone numbers and
ticket references. DIET reads the context ("my order is ...", "call me at ...") but will also offer
"2" from "ordered 2 chairs" or "49.99" as an order number; the regexes in data/ know the formats
but not the context ("07911 123456" holds a 6-digit number that looks like an order). This
component, placed after both, keeps what a customer would expect:

- an entity whose type has regexes in the training data is kept only if its whole value matches
  one of them (so "2" is not an order number, "100482" is);
- where entities of different types overlap, the longest span wins (the phone number, not the
  order number inside it);
- the same type over the same span is reported once (the regex's copy is kept).

Without this, a slot filled from the first "order_number" of "ordered 2 chairs, order 100482"
would ask the customer why "2" is not an order number.

Pipeline entry (config.yml), after the entity extractors and before EntitySynonymMapper:

    - name: kefu_nlu.entities.EntityFormatFilter
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Pattern, Text

# Rasa's names for an entity's fields (rasa.shared.nlu.constants), spelled out so that
# keep_entities can be tested without Rasa.
ENTITIES = "entities"
ENTITY_ATTRIBUTE_TYPE = "entity"
ENTITY_ATTRIBUTE_VALUE = "value"
ENTITY_ATTRIBUTE_START = "start"
ENTITY_ATTRIBUTE_END = "end"
EXTRACTOR = "extractor"

PATTERNS_FILE = "entity_formats.json"
REGEX_EXTRACTOR = "RegexEntityExtractor"


def keep_entities(
    entities: List[Dict[str, Any]], formats: Dict[str, List[Pattern[str]]]
) -> List[Dict[str, Any]]:
    """The entities worth keeping, in their original order (see the module's docstring)."""

    def well_formed(entity: Dict[str, Any]) -> bool:
        patterns = formats.get(entity.get(ENTITY_ATTRIBUTE_TYPE, ""))
        if not patterns:
            return True
        value = str(entity.get(ENTITY_ATTRIBUTE_VALUE, "")).strip()
        return any(pattern.fullmatch(value) for pattern in patterns)

    def span(entity: Dict[str, Any]) -> int:
        return int(entity.get(ENTITY_ATTRIBUTE_END, 0)) - int(entity.get(ENTITY_ATTRIBUTE_START, 0))

    candidates = [entity for entity in entities if well_formed(entity)]
    # Longest spans first; on a tie the regex's copy first, so it is the one kept.
    ranked = sorted(
        range(len(candidates)),
        key=lambda i: (-span(candidates[i]), candidates[i].get(EXTRACTOR) != REGEX_EXTRACTOR),
    )
    kept: List[int] = []
    for i in ranked:
        entity = candidates[i]
        start, end = entity.get(ENTITY_ATTRIBUTE_START), entity.get(ENTITY_ATTRIBUTE_END)
        clash = False
        for j in kept:
            other = candidates[j]
            if start is None or other.get(ENTITY_ATTRIBUTE_START) is None:
                continue
            overlaps = start < other[ENTITY_ATTRIBUTE_END] and other[ENTITY_ATTRIBUTE_START] < end
            same_type = entity.get(ENTITY_ATTRIBUTE_TYPE) == other.get(ENTITY_ATTRIBUTE_TYPE)
            same_span = (start, end) == (other[ENTITY_ATTRIBUTE_START], other[ENTITY_ATTRIBUTE_END])
            if overlaps and (not same_type or same_span):
                clash = True
                break
        if not clash:
            kept.append(i)
    return [candidates[i] for i in sorted(kept)]


# --- the Rasa component -----------------------------------------------------------------------

try:
    from rasa.engine.graph import ExecutionContext, GraphComponent
    from rasa.engine.recipes.default_recipe import DefaultV1Recipe
    from rasa.engine.storage.resource import Resource
    from rasa.engine.storage.storage import ModelStorage
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData
except ImportError:  # pragma: no cover - outside the Rasa environment
    pass
else:

    @DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
    class EntityFormatFilter(GraphComponent):
        """Drops malformed and overlapping entities; the formats are the training data's regexes."""

        @staticmethod
        def get_default_config() -> Dict[Text, Any]:
            return {}

        def __init__(
            self, model_storage: ModelStorage, resource: Resource, formats: Dict[str, List[str]]
        ) -> None:
            self.model_storage = model_storage
            self.resource = resource
            self.sources = formats
            self.formats = {
                name: [re.compile(pattern, re.IGNORECASE) for pattern in patterns]
                for name, patterns in formats.items()
            }

        @classmethod
        def create(
            cls,
            config: Dict[Text, Any],
            model_storage: ModelStorage,
            resource: Resource,
            execution_context: ExecutionContext,
        ) -> "EntityFormatFilter":
            return cls(model_storage, resource, {})

        def train(self, training_data: TrainingData) -> Resource:
            formats: Dict[str, List[str]] = {}
            for regex in training_data.regex_features:
                formats.setdefault(regex["name"], []).append(regex["pattern"])
            with self.model_storage.write_to(self.resource) as directory:
                (directory / PATTERNS_FILE).write_text(json.dumps(formats, indent=2))
            return self.resource

        @classmethod
        def load(
            cls,
            config: Dict[Text, Any],
            model_storage: ModelStorage,
            resource: Resource,
            execution_context: ExecutionContext,
            **kwargs: Any,
        ) -> "EntityFormatFilter":
            try:
                with model_storage.read_from(resource) as directory:
                    formats = json.loads((directory / PATTERNS_FILE).read_text())
            except (ValueError, FileNotFoundError):
                formats = {}
            return cls(model_storage, resource, formats)

        def process(self, messages: List[Message]) -> List[Message]:
            for message in messages:
                entities = message.get(ENTITIES)
                if entities:
                    message.set(ENTITIES, keep_entities(entities, self.formats), add_to_output=True)
            return messages
