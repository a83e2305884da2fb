"""Writes a small CycloneDX 1.6 ML-BOM with cyclonedx-python-lib (another generator), for
mlsign's interop tests: mlsign must accept, show and explain it."""
import sys
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model import HashType, HashAlgorithm
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
bom = Bom()
m = Component(name="foreign-model", type=ComponentType.MACHINE_LEARNING_MODEL, bom_ref="fm",
              hashes=[HashType(alg=HashAlgorithm.SHA_256, content="ab" * 32)])
lib = Component(name="numpy", version="1.26.4", type=ComponentType.LIBRARY, bom_ref="np",
                purl=PackageURL("pypi", name="numpy", version="1.26.4"))
data = Component(name="imdb", type=ComponentType.DATA, bom_ref="imdb")
bom.metadata.component = m
bom.components.add(lib)
bom.components.add(data)
bom.register_dependency(m, [lib, data])
print(JsonV1Dot6(bom).output_as_string(indent=2))
