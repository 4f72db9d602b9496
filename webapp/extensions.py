"""Unbound extension singletons; `create_app` binds them."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy

from models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
sock = Sock()
login_manager = LoginManager()
