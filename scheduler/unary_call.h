// A unary method of one of the scheduler's async services, answered on the
// core thread as soon as a call arrives (that thread owns the core, so the
// answer reads it directly). Each call accepted asks for the next.
#ifndef FLEET_SCHEDULER_UNARY_CALL_H_
#define FLEET_SCHEDULER_UNARY_CALL_H_

#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "common/cluster_token.h"
#include "common/completion_tag.h"
#include "common/grpc_status.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_unary_call.h"

namespace fleet::scheduler {

template <typename Service, typename Request, typename Reply>
class UnaryMethod {
 public:
  // The service's generated RequestX.
  using RequestFn = void (Service::*)(grpc::ServerContext*, Request*,
                                      grpc::ServerAsyncResponseWriter<Reply>*,
                                      grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                      void*);
  // Fills in the reply; returns the call's status. Runs on the core thread.
  using Answer = absl::AnyInvocable<absl::Status(const Request&, Reply&)>;

  // Asks for the first call on `queue`; calls whose token `token` refuses
  // get its status.
  static void Accept(Service* service, grpc::ServerCompletionQueue* queue, RequestFn request,
                     const ClusterTokenCheck* token, Answer answer) {
    auto method = std::shared_ptr<UnaryMethod>(
        new UnaryMethod(service, queue, request, token, std::move(answer)));
    Call::AwaitNext(std::move(method));
  }

 private:
  // One call; deletes itself once the answer is sent (or, when the server
  // shuts down, once its request comes back unmatched).
  class Call final : public CompletionTag {
   public:
    static void AwaitNext(std::shared_ptr<UnaryMethod> method) {
      auto* call = new Call(std::move(method));
      UnaryMethod& m = *call->method_;
      (m.service_->*m.request_)(&call->context_, &call->request_, &call->responder_, m.queue_,
                                m.queue_, call);
    }

    void Handle(bool ok) override {
      if (answered_ || !ok) {
        delete this;
        return;
      }
      AwaitNext(method_);
      answered_ = true;
      grpc::Status status = method_->token_->Check(context_);
      if (status.ok()) status = ToGrpcStatus(method_->answer_(request_, reply_));
      if (status.ok()) {
        responder_.Finish(reply_, status, this);
      } else {
        responder_.FinishWithError(status, this);
      }
    }

   private:
    explicit Call(std::shared_ptr<UnaryMethod> method) : method_(std::move(method)) {}

    const std::shared_ptr<UnaryMethod> method_;
    grpc::ServerContext context_;
    Request request_;
    Reply reply_;
    grpc::ServerAsyncResponseWriter<Reply> responder_{&context_};
    bool answered_ = false;
  };

  UnaryMethod(Service* service, grpc::ServerCompletionQueue* queue, RequestFn request,
              const ClusterTokenCheck* token, Answer answer)
      : service_(service),
        queue_(queue),
        request_(request),
        token_(token),
        answer_(std::move(answer)) {}

  Service* const service_;
  grpc::ServerCompletionQueue* const queue_;
  const RequestFn request_;
  const ClusterTokenCheck* const token_;
  Answer answer_;  // the core thread's
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_UNARY_CALL_H_
