"""The conformance suite's fixture server, written as a team would write its own `MCPServer`.

`@modelcontextprotocol/conformance` drives named fixture tools, resources and
prompts (`test_*`, `test://...`); their names and payloads come from the suite's
scenario descriptions, so they are fixed here, not a style choice. Everything
else is the SDK's documented surface: decorators, `Context` for logging,
progress and client capabilities, `InputRequiredResult` with
`ctx.input_responses` / `ctx.request_state` for multi-round input, `Resolve`
for input a tool needs on either protocol era, `Image` / `Audio` helpers and
a completion handler.

No request-state key is configured: the host decides how `requestState` is
sealed (the SDK's own transport seals with a per-process key, ours with the
fleet's shared ring), which is exactly what the conformance runs check.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import (
    Audio,
    Context,
    Elicit,
    ElicitationResult,
    Image,
    MCPServer,
    Resolve,
    Sample,
    UserMessage,
)
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.server.mcpserver.tools import Tool
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    InputRequest,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field

# A 1x1 red PNG and an 8-sample silent 8 kHz mono WAV: the smallest real files of each kind.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
WAV = base64.b64decode("UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==")
STEP_DELAY_S = 0.05
"""The suite asks for ~50 ms between notifications, so a client sees them arrive one by one."""


def _contact_tool() -> Tool:
    """A tool whose input schema uses JSON Schema 2020-12 beyond what a signature can express (SEP-1613, SEP-2106).

    `MCPServer.tool()` derives the schema from the signature; a hand-written one is a `Tool` given to the
    constructor, its schema replaced. The signature still validates the arguments the schema allows.
    """

    def json_schema_2020_12_tool(
        name: str | None = None,
        address: dict[str, str] | None = None,
        contactMethod: str | None = None,
        phone: str | None = None,
        email: str | None = None,
    ) -> str:
        """Records a contact, reachable by phone or by email."""
        return f"contact {name or '<unnamed>'} by {contactMethod or 'email'}: {phone or email}"

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "address",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": False,
    }
    return Tool.from_function(json_schema_2020_12_tool).model_copy(update={"parameters": schema})


server = MCPServer(name="conformance-everything", version="1.0.0", tools=[_contact_tool()])


# -- content types ------------------------------------------------------------------------------------------------


@server.tool()
def test_simple_text() -> str:
    """Returns one text block."""
    return "This is a simple text response for testing."


@server.tool()
def test_image_content() -> Image:
    """Returns a PNG image block."""
    return Image(data=PNG, format="png")


@server.tool()
def test_audio_content() -> Audio:
    """Returns a WAV audio block."""
    return Audio(data=WAV, format="wav")


def _embedded(uri: str, text: str, mime_type: str = "text/plain") -> EmbeddedResource:
    return EmbeddedResource(type="resource", resource=TextResourceContents(uri=uri, mime_type=mime_type, text=text))


@server.tool()
def test_embedded_resource() -> EmbeddedResource:
    """Returns an embedded text resource."""
    return _embedded("test://embedded-resource", "This is an embedded resource content.")


@server.tool()
def test_multiple_content_types() -> list[str | Image | EmbeddedResource]:
    """Returns text, an image and an embedded JSON resource in one result."""
    return [
        "Multiple content types test:",
        Image(data=PNG, format="png"),
        _embedded("test://mixed-content-resource", json.dumps({"test": "data", "value": 123}), "application/json"),
    ]


@server.tool()
def test_error_handling() -> str:
    """Fails on purpose: a ToolError reaches the model as an isError result carrying this message."""
    raise ToolError("This tool intentionally returns an error for testing")


# -- notifications on the request's own stream --------------------------------------------------------------------


@server.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Logs three info messages, paced so each is its own SSE event (sent only to a client that opted in)."""
    await ctx.info("Tool execution started")
    await asyncio.sleep(STEP_DELAY_S)
    await ctx.info("Tool processing data")
    await asyncio.sleep(STEP_DELAY_S)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@server.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Logs one message; a 2026-07-28 request without the logLevel opt-in must not receive it."""
    await ctx.info("test_logging_tool ran")
    return "logged"


@server.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports 0, 50 and 100 of 100 (to a request that carried a progressToken) and names the request."""
    for step in (0, 50, 100):
        if step:
            await asyncio.sleep(STEP_DELAY_S)
        await ctx.report_progress(step, 100, f"Completed step {step} of 100")
    return f"Progress reported for request {ctx.request_id}"


# -- input from the client: Resolve picks the era's mechanism ------------------------------------------------------
# On 2026-07-28 a resolver's question rides an InputRequiredResult; on 2025-11-25 it is a server-to-client request
# mid-call, which needs a session: a stateless host answers those with its error, and these tools let it through.


class UserReply(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


class Defaults(BaseModel):
    """SEP-1034: a default for every primitive type."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verification status")


def _choices(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"const": value, "title": title} for value, title in pairs]


class Enums(BaseModel):
    """SEP-1330: the five enum shapes a form can carry (field names are the ones the suite inspects)."""

    untitledSingle: str = Field(json_schema_extra={"enum": ["option1", "option2", "option3"]})
    titledSingle: str = Field(
        json_schema_extra={
            "oneOf": _choices(("value1", "First Option"), ("value2", "Second Option"), ("value3", "Third Option"))
        }
    )
    legacyEnum: str = Field(
        json_schema_extra={"enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]}
    )
    untitledMulti: list[str] = Field(
        json_schema_extra={"items": {"type": "string", "enum": ["option1", "option2", "option3"]}}
    )
    titledMulti: list[str] = Field(
        json_schema_extra={
            "items": {
                "anyOf": _choices(("value1", "First Choice"), ("value2", "Second Choice"), ("value3", "Third Choice"))
            }
        }
    )


def ask_prompt(prompt: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100)


def ask_user(message: str) -> Elicit[UserReply]:
    return Elicit(message, UserReply)


def ask_defaults() -> Elicit[Defaults]:
    return Elicit("Please provide user information", Defaults)


def ask_enums() -> Elicit[Enums]:
    return Elicit("Please select values using different enum schema types", Enums)


def _outcome(result: ElicitationResult[BaseModel]) -> str:
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"action={result.action}, content={content}"


@server.tool()
def test_sampling(prompt: str, reply: Annotated[CreateMessageResult, Resolve(ask_prompt)]) -> str:
    """Asks the client's model to answer `prompt` (needs the sampling capability)."""
    text = reply.content.text if isinstance(reply.content, TextContent) else f"<{reply.content.type}>"
    return f"LLM response: {text}"


@server.tool()
def test_elicitation(message: str, reply: Annotated[ElicitationResult[UserReply], Resolve(ask_user)]) -> str:
    """Asks the user `message` for a username and an email."""
    return f"User response: {_outcome(reply)}"


@server.tool()
def test_elicitation_sep1034_defaults(reply: Annotated[ElicitationResult[Defaults], Resolve(ask_defaults)]) -> str:
    """Elicits a form whose every field has a default."""
    return f"Elicitation completed: {_outcome(reply)}"


@server.tool()
def test_elicitation_sep1330_enums(reply: Annotated[ElicitationResult[Enums], Resolve(ask_enums)]) -> str:
    """Elicits a form with each enum variant."""
    return f"Elicitation completed: {_outcome(reply)}"


def ask_model_hello() -> Sample:
    return ask_prompt("Say hello")


@server.tool()
def test_missing_capability(reply: Annotated[CreateMessageResult, Resolve(ask_model_hello)]) -> str:
    """Needs sampling: a client that did not declare it gets -32021 naming `sampling`, before the body runs."""
    return "sampled"


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@server.tool()
def test_streaming_elicitation(answer: Annotated[Name, Resolve(ask_name)]) -> str:
    """Elicits mid-call: on 2026-07-28 the question must come back as the result, never as a request on the stream."""
    return f"Hello, {answer.name}!"


# -- multi-round input_required (SEP-2322): the handler sees plaintext; the SDK's boundary seals requestState ------


def _form(message: str, field: str, kind: str = "string") -> ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _sampling(text: str, max_tokens: int) -> CreateMessageRequest:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=text))
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens))


def _accepted(ctx: Context, key: str, field: str) -> str | None:
    """The `field` the user entered for input request `key`, or None when it was not answered (or declined)."""
    answer = (ctx.input_responses or {}).get(key)
    if isinstance(answer, ElicitResult) and answer.action == "accept" and answer.content:
        value = answer.content.get(field)
        return None if value is None else str(value)
    return None


@server.tool()
def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
    """Greets the user by name, asking for it first; a retry without a usable answer is asked again."""
    if (name := _accepted(ctx, "user_name", "name")) is None:
        return InputRequiredResult(input_requests={"user_name": _form("What is your name?", "name")})
    return f"Hello, {name}!"


@server.tool()
def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
    """Asks the client's model a question and reports its answer."""
    answer = (ctx.input_responses or {}).get("capital_question")
    if not isinstance(answer, CreateMessageResult):
        question = _sampling("What is the capital of France?", 100)
        return InputRequiredResult(input_requests={"capital_question": question})
    return f"Model said: {answer.content.text if isinstance(answer.content, TextContent) else answer.content.type}"


@server.tool()
def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
    """Lists the client's roots."""
    answer = (ctx.input_responses or {}).get("client_roots")
    if not isinstance(answer, ListRootsResult):
        return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})
    return "Client roots: " + (", ".join(str(root.uri) for root in answer.roots) or "none")


@server.tool()
def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
    """Completes only when the retry echoes the state this tool minted (the boundary proves it is untampered)."""
    if ctx.request_state == "awaiting-confirmation" and "confirm" in (ctx.input_responses or {}):
        return "state-ok: confirmation received"
    return InputRequiredResult(
        input_requests={"confirm": _form("Please confirm", "ok", "boolean")}, request_state="awaiting-confirmation"
    )


@server.tool()
def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
    """Asks for a name, a sampled greeting and the roots in one round."""
    wanted: dict[str, InputRequest] = {
        "user_name": _form("What is your name?", "name"),
        "greeting": _sampling("Generate a greeting", 50),
        "client_roots": ListRootsRequest(),
    }
    if wanted.keys() <= (ctx.input_responses or {}).keys():
        return "Received all inputs: user_name, greeting, client_roots"
    return InputRequiredResult(input_requests=wanted, request_state="multiple-inputs")


@server.tool()
def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
    """Three rounds: a name, then a colour (the name carried in requestState), then the answer."""
    state = json.loads(ctx.request_state) if ctx.request_state else {}
    if "name" not in state:
        if (name := _accepted(ctx, "step1", "name")) is None:
            question = _form("Step 1: What is your name?", "name")
            return InputRequiredResult(input_requests={"step1": question}, request_state=json.dumps(state))
        state = {"name": name}
    elif (color := _accepted(ctx, "step2", "color")) is not None:
        return f"{state['name']} likes {color}."
    question = _form("Step 2: What is your favorite color?", "color")
    return InputRequiredResult(input_requests={"step2": question}, request_state=json.dumps(state))


@server.tool()
def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
    """Round one mints state; a retry reaching this body carries it intact (a tampered one is -32602 before it)."""
    if ctx.request_state is None:
        return InputRequiredResult(
            input_requests={"confirm": _form("Please confirm", "ok", "boolean")}, request_state="round-1"
        )
    return f"state-ok: {ctx.request_state}"


@server.tool()
def test_input_required_result_capabilities(ctx: Context) -> InputRequiredResult:
    """Asks only for the kinds of input the client declared it can give."""
    caps = ctx.client_capabilities
    wanted: dict[str, InputRequest] = {}
    if caps and caps.sampling is not None:
        wanted["greeting"] = _sampling("Say hello", 50)
    if caps and caps.elicitation is not None:
        wanted["user_name"] = _form("What is your name?", "name")
    if caps and caps.roots is not None:
        wanted["client_roots"] = ListRootsRequest()
    return InputRequiredResult(input_requests=wanted, request_state="capability-gated")


@server.tool()
def test_x_mcp_header(
    region: Annotated[
        str, Field(description="Mirrored as Mcp-Param-Region", json_schema_extra={"x-mcp-header": "Region"})
    ],
) -> str:
    """SEP-2243: the client also sends `region` as the `Mcp-Param-Region` header, which the server checks."""
    return f"region={region}"


# -- list changes, announced to subscriptions/listen streams (SEP-2575) -----------------------------------------------


def _scratch() -> str:
    """Exists only between the add and the remove of a trigger below."""
    return "scratch"


@server.tool()
async def test_trigger_tool_change(ctx: Context) -> str:
    """Changes the tool list (a tool added, then removed: the catalogue ends as it began) and announces it."""
    server.add_tool(_scratch, name="test_scratch_tool")
    server.remove_tool("test_scratch_tool")
    await ctx.notify_tools_changed()
    return "tool list changed"


@server.tool()
async def test_trigger_prompt_change(ctx: Context) -> str:
    """Changes the prompt list the same way and announces it."""
    server.add_prompt(Prompt.from_function(_scratch, name="test_scratch_prompt"))
    server.remove_prompt("test_scratch_prompt")
    await ctx.notify_prompts_changed()
    return "prompt list changed"


# -- resources --------------------------------------------------------------------------------------------------------


@server.resource("test://static-text", mime_type="text/plain")
def static_text() -> str:
    """A fixed text resource."""
    return "This is the content of the static text resource."


@server.resource("test://static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A fixed binary resource (the PNG), served as a blob."""
    return PNG


@server.resource("test://template/{id}/data", mime_type="application/json")
def template_data(id: str) -> str:
    """JSON naming the `id` taken from the URI."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.resource("test://watched-resource", mime_type="text/plain")
def watched() -> str:
    """A resource a handshake-era client may subscribe to."""
    return "Watched resource content"


# -- prompts ------------------------------------------------------------------------------------------------------


@server.prompt()
def test_simple_prompt() -> str:
    """A prompt without arguments."""
    return "This is a simple prompt for testing."


@server.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt built from two required arguments."""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt embedding the resource named by `resourceUri`."""
    return [
        UserMessage(_embedded(resourceUri, "Embedded resource content for testing.")),
        UserMessage("Please process the embedded resource above."),
    ]


@server.prompt()
def test_prompt_with_image() -> list[UserMessage]:
    """A prompt carrying an image."""
    return [UserMessage(Image(data=PNG, format="png")), UserMessage("Please analyze the image above.")]


@server.prompt()
def test_input_required_result_prompt(ctx: Context) -> str | InputRequiredResult:
    """A prompt that asks the user for its context first: input_required is not only for tools."""
    if (context := _accepted(ctx, "user_context", "context")) is None:
        question = _form("What context should the prompt use?", "context")
        return InputRequiredResult(input_requests={"user_context": question})
    return f"Use the following context: {context}"


# -- handshake-era logging/setLevel -------------------------------------------------------------------------------


async def set_log_level(ctx: ServerRequestContext, params: SetLevelRequestParams) -> EmptyResult:
    """Accepts the handshake era's level and keeps nothing: a stateless server has no session to keep it on.

    Every level is then deliverable, as the SDK defines it for those versions; 2026-07-28 clients opt in per
    request instead, and the SDK answers their `logging/setLevel` as unknown.
    """
    return EmptyResult()


# MCPServer has no public hook for a method the 2026 revision removed; the SDK points to the low-level
# `Server.add_request_handler` for re-providing one (mcp.server.extension.MethodBinding).
server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_log_level)


# -- completion -----------------------------------------------------------------------------------------------------

SUGGESTIONS = {
    "arg1": ["paris", "park", "party", "hello"],
    "arg2": ["world", "wonder", "word"],
    "id": ["1", "42", "123"],
}
"""Values offered per argument name, for prompt arguments and the template's `{id}` alike."""


@server.completion()
async def complete(
    ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: CompletionContext | None
) -> Completion:
    """Offers the known values that start with what the user has typed so far."""
    values = [value for value in SUGGESTIONS.get(argument.name, []) if value.startswith(argument.value)]
    return Completion(values=values, total=len(values), has_more=False)
