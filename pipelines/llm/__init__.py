"""The LLM client layer: structured outputs from any OpenAI-compatible endpoint, cached, rate
limited, retried, with failures written down instead of lost.

    client = LLMClient(LLMConfig(base_url="http://127.0.0.1:8000/v1", model="qwen"), Path("out/videoqa"))
    answer = client.complete("refiner", messages, QAOutput, template_version="refiner-qa/1", locator=sample.id)
"""

from pipelines.llm.client import LLMClient, LLMConfig, LLMFailure

__all__ = ["LLMClient", "LLMConfig", "LLMFailure"]
