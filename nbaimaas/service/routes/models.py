"""The registry over HTTP: list, get, versions, aliases, delete, download, upload, evaluate.

Every path parameter is a strict model name or reference (names.parse_ref) before the store is
touched; the registry then builds every path from those checked names and store.inside().
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...errors import UserError
from ...specs import DataSpec
from .._context import ServiceContext, check_name, check_ref, get_ctx, json_body, to_thread
from .._models_io import pack_model, unpack_model
from ..wire import SAFETENSORS_TYPE, check_safetensors

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="Every registered version (of ?name=)")
async def list_models(name: str | None = None, ctx: ServiceContext = Depends(get_ctx)) -> list:
    if name is not None:
        check_name(name)
    return [m.to_dict() for m in await to_thread(ctx.backend.models, name)]


@router.get("/{name}/versions", summary="The versions of one model")
async def versions(name: str, ctx: ServiceContext = Depends(get_ctx)) -> list:
    check_name(name)
    return [m.to_dict() for m in await to_thread(ctx.backend.models, name)]


@router.get("/{ref}", summary="One version: NAME (newest), NAME:VERSION or NAME@ALIAS")
async def get_model(ref: str, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    return (await to_thread(ctx.backend.model, check_ref(ref))).to_dict()


@router.put("/{ref}/aliases/{alias}", summary="Point NAME@ALIAS at the version REF names")
async def set_alias(ref: str, alias: str, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    return (await to_thread(ctx.backend.set_alias, check_ref(ref), alias)).to_dict()


@router.delete("/{name}/aliases/{alias}", status_code=204, summary="Remove an alias")
async def remove_alias(name: str, alias: str, ctx: ServiceContext = Depends(get_ctx)) -> Response:
    await to_thread(ctx.backend.registry.remove_alias, check_name(name), alias)
    return Response(status_code=204)


@router.delete("/{ref}", summary="Delete a version (or every version with ?all_versions=true)")
async def delete(ref: str, all_versions: bool = False, ctx: ServiceContext = Depends(get_ctx)) -> list:
    gone = await to_thread(ctx.backend.registry.delete, check_ref(ref), all_versions=all_versions)
    return [m.to_dict() for m in gone]


@router.get("/{ref}/download", summary="The version as one safetensors file (weights + spec JSON)",
            response_class=Response)
async def download(ref: str, ctx: ServiceContext = Depends(get_ctx)) -> Response:
    loaded = await to_thread(ctx.backend.registry.load, check_ref(ref))
    body = await to_thread(pack_model, loaded)
    filename = f"{loaded.version.name}-{loaded.version.version}.safetensors"
    return Response(body, media_type=SAFETENSORS_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/{name}", status_code=201, summary="Upload a version: a safetensors file as downloaded")
async def upload(name: str, request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    check_name(name)
    body = await request.body()
    check_safetensors(body)        # pickle, zip and malformed headers are refused before parsing
    fields = await to_thread(unpack_model, body)
    return (await to_thread(ctx.backend.registry.register, name, **fields)).to_dict()


@router.post("/{ref}/evaluate", summary="Metrics of a version on a split")
async def evaluate(ref: str, request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    check_ref(ref)
    body = await json_body(request)
    data = None if body.get("data") is None else DataSpec.from_dict(body["data"])
    split = body.get("split", "test")
    if not isinstance(split, str):
        raise UserError("split must be train, val or test")
    result = await to_thread(ctx.backend.evaluate, ref, data, split, ctx.inline(body.get("inline")))
    return result.to_dict()
