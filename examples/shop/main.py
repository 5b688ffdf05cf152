"""The shop's FastAPI application."""

from fastapi import FastAPI

from shop.routes import router

app = FastAPI(title="shop")
app.include_router(router)
